//! The template generator (no LLM): plausible persona-voiced mail in en, es, pt, fr and de,
//! so mail keeps flowing when no LLM is configured or it is down (realism.md §11.3).
//!
//! Voice comes from the persona: tone picks greeting and closing, role colours the requests,
//! mannerisms that the templates understand are applied (numbered requests, bullets, initials
//! sign-off, a P.S., exclamations, lowercase) and the signature block is used verbatim.

use rand::seq::SliceRandom;
use rand::Rng;

use super::prompt::{apply_em_dash_policy, ParsedEmail};
use super::thread::{ThreadPlan, CONTEXT_HINTS};
use crate::domain::realism::{Persona, Tone};

struct Lang {
    /// (subject, opening sentence) per topic, aligned with the first 8 context hints.
    topics: [(&'static str, &'static str); 8],
    greet_formal: &'static str,
    greet_casual: &'static str,
    reply_openers: [&'static str; 4],
    asks: [&'static str; 6],
    role_line: &'static str,
    close_formal: &'static str,
    close_casual: &'static str,
    close_direct: &'static str,
    ps: &'static str,
}

const EN: Lang = Lang {
    topics: [
        ("Q3 budget review", "I have gone through the Q3 budget figures and need your sign-off before Friday."),
        ("Feedback on the client presentation", "The client came back with feedback on Tuesday's presentation."),
        ("Deadline extension request", "We will not make the current deadline without cutting scope, so I would like to ask for an extension."),
        ("Team building day", "We are planning the team building day for next month and I need a headcount."),
        ("Planned maintenance this weekend", "IT will patch the file servers on Saturday between 22:00 and 02:00."),
        ("Quarterly review prep", "Quarterly reviews start next week and I am collecting the material."),
        ("New vendor onboarding", "The new vendor signed yesterday, so onboarding can start."),
        ("Holiday schedule", "Here is the draft holiday schedule for the team."),
    ],
    greet_formal: "Dear {name},",
    greet_casual: "Hi {first},",
    reply_openers: [
        "Thanks for your message.",
        "Thanks, that helps.",
        "Following up on your note below.",
        "Got it, thanks for the quick answer.",
    ],
    asks: [
        "Could you confirm the numbers by end of day?",
        "Please send me the updated file when you have it.",
        "Can we find 20 minutes tomorrow to go through it?",
        "Let me know if anything is missing on your side.",
        "Please check the attached draft and flag anything odd.",
        "Can you loop in whoever owns this on your team?",
    ],
    role_line: "From the {role} side, the open point is the timeline.",
    close_formal: "Kind regards,",
    close_casual: "Cheers,",
    close_direct: "Thanks,",
    ps: "P.S. I am out Thursday afternoon.",
};

const ES: Lang = Lang {
    topics: [
        ("Revisión del presupuesto del T3", "He revisado las cifras del presupuesto del tercer trimestre y necesito tu aprobación antes del viernes."),
        ("Comentarios sobre la presentación al cliente", "El cliente nos envió sus comentarios sobre la presentación del martes."),
        ("Solicitud de ampliación de plazo", "No llegaremos a la fecha actual sin recortar alcance, así que quiero pedir una ampliación."),
        ("Jornada de integración del equipo", "Estamos organizando la jornada de integración del próximo mes y necesito saber cuántos vienen."),
        ("Mantenimiento programado este fin de semana", "Sistemas actualizará los servidores de archivos el sábado entre las 22:00 y las 02:00."),
        ("Preparación de la evaluación trimestral", "Las evaluaciones trimestrales empiezan la próxima semana y estoy reuniendo el material."),
        ("Alta del nuevo proveedor", "El nuevo proveedor firmó ayer, así que podemos empezar con el alta."),
        ("Calendario de vacaciones", "Te paso el borrador del calendario de vacaciones del equipo."),
    ],
    greet_formal: "Estimado/a {name}:",
    greet_casual: "Hola {first}:",
    reply_openers: [
        "Gracias por tu mensaje.",
        "Gracias, me sirve.",
        "Retomo tu correo de abajo.",
        "Entendido, gracias por la respuesta rápida.",
    ],
    asks: [
        "¿Puedes confirmar las cifras antes de que acabe el día?",
        "Envíame el archivo actualizado cuando lo tengas.",
        "¿Tienes 20 minutos mañana para revisarlo juntos?",
        "Avísame si falta algo por tu parte.",
        "Revisa el borrador adjunto y señala lo que no cuadre.",
        "¿Puedes incluir a la persona responsable de tu equipo?",
    ],
    role_line: "Desde {role}, el punto pendiente es el calendario.",
    close_formal: "Un cordial saludo,",
    close_casual: "Saludos,",
    close_direct: "Gracias,",
    ps: "P.D.: el jueves por la tarde no estaré.",
};

const PT: Lang = Lang {
    topics: [
        ("Revisão do orçamento do 3º trimestre", "Revi os números do orçamento do terceiro trimestre e preciso da sua aprovação até sexta."),
        ("Comentários sobre a apresentação ao cliente", "O cliente enviou comentários sobre a apresentação de terça-feira."),
        ("Pedido de prorrogação de prazo", "Não vamos cumprir o prazo atual sem reduzir o escopo, por isso gostaria de pedir uma prorrogação."),
        ("Dia de integração da equipe", "Estamos organizando o dia de integração do próximo mês e preciso saber quantas pessoas vêm."),
        ("Manutenção programada neste fim de semana", "A TI vai atualizar os servidores de arquivos no sábado, entre 22h e 2h."),
        ("Preparação da avaliação trimestral", "As avaliações trimestrais começam na próxima semana e estou reunindo o material."),
        ("Cadastro do novo fornecedor", "O novo fornecedor assinou ontem, então podemos começar o cadastro."),
        ("Calendário de férias", "Segue o rascunho do calendário de férias da equipe."),
    ],
    greet_formal: "Prezado(a) {name},",
    greet_casual: "Oi {first},",
    reply_openers: [
        "Obrigado pela mensagem.",
        "Obrigado, isso ajuda.",
        "Retomando a sua mensagem abaixo.",
        "Entendido, obrigado pela resposta rápida.",
    ],
    asks: [
        "Você pode confirmar os números até o fim do dia?",
        "Por favor, me envie o arquivo atualizado quando tiver.",
        "Conseguimos 20 minutos amanhã para revisar?",
        "Me avise se faltar algo do seu lado.",
        "Dê uma olhada no rascunho anexo e aponte o que estiver estranho.",
        "Pode incluir o responsável da sua equipe?",
    ],
    role_line: "Do lado de {role}, o ponto em aberto é o cronograma.",
    close_formal: "Atenciosamente,",
    close_casual: "Abraços,",
    close_direct: "Obrigado,",
    ps: "P.S.: estarei fora na quinta à tarde.",
};

const FR: Lang = Lang {
    topics: [
        ("Revue du budget du T3", "J'ai parcouru les chiffres du budget du troisième trimestre et j'ai besoin de votre validation avant vendredi."),
        ("Retour sur la présentation client", "Le client nous a fait un retour sur la présentation de mardi."),
        ("Demande de report d'échéance", "Nous ne tiendrons pas l'échéance actuelle sans réduire le périmètre, je souhaite donc demander un report."),
        ("Journée de cohésion d'équipe", "Nous préparons la journée de cohésion du mois prochain et j'ai besoin du nombre de participants."),
        ("Maintenance prévue ce week-end", "L'informatique mettra à jour les serveurs de fichiers samedi entre 22h et 2h."),
        ("Préparation de l'entretien trimestriel", "Les entretiens trimestriels commencent la semaine prochaine et je rassemble les éléments."),
        ("Référencement du nouveau fournisseur", "Le nouveau fournisseur a signé hier, le référencement peut donc commencer."),
        ("Planning des congés", "Voici le brouillon du planning des congés de l'équipe."),
    ],
    greet_formal: "Bonjour {name},",
    greet_casual: "Salut {first},",
    reply_openers: [
        "Merci pour votre message.",
        "Merci, c'est utile.",
        "Je reviens vers vous suite à votre message ci-dessous.",
        "Bien reçu, merci pour la réponse rapide.",
    ],
    asks: [
        "Pouvez-vous confirmer les chiffres d'ici ce soir ?",
        "Merci de m'envoyer le fichier à jour dès que possible.",
        "Auriez-vous 20 minutes demain pour en parler ?",
        "Dites-moi s'il manque quelque chose de votre côté.",
        "Merci de relire le brouillon joint et de signaler ce qui cloche.",
        "Pouvez-vous mettre en copie la personne responsable dans votre équipe ?",
    ],
    role_line: "Côté {role}, le point ouvert reste le calendrier.",
    close_formal: "Cordialement,",
    close_casual: "À plus,",
    close_direct: "Merci,",
    ps: "P.-S. : je serai absent jeudi après-midi.",
};

const DE: Lang = Lang {
    topics: [
        ("Überprüfung des Q3-Budgets", "Ich habe die Zahlen des Q3-Budgets durchgesehen und brauche bis Freitag Ihre Freigabe."),
        ("Rückmeldung zur Kundenpräsentation", "Der Kunde hat sich zur Präsentation vom Dienstag zurückgemeldet."),
        ("Bitte um Fristverlängerung", "Ohne Abstriche am Umfang schaffen wir den aktuellen Termin nicht, daher bitte ich um eine Verlängerung."),
        ("Teamtag im nächsten Monat", "Wir planen den Teamtag im nächsten Monat und ich brauche die Teilnehmerzahl."),
        ("Geplante Wartung am Wochenende", "Die IT spielt am Samstag zwischen 22:00 und 02:00 Uhr Updates auf die Dateiserver ein."),
        ("Vorbereitung des Quartalsgesprächs", "Die Quartalsgespräche beginnen nächste Woche und ich sammle die Unterlagen."),
        ("Anlage des neuen Lieferanten", "Der neue Lieferant hat gestern unterschrieben, wir können also mit der Anlage beginnen."),
        ("Urlaubsplanung", "Anbei der Entwurf der Urlaubsplanung für das Team."),
    ],
    greet_formal: "Sehr geehrte/r {name},",
    greet_casual: "Hallo {first},",
    reply_openers: [
        "Danke für Ihre Nachricht.",
        "Danke, das hilft weiter.",
        "Ich komme auf Ihre Nachricht unten zurück.",
        "Verstanden, danke für die schnelle Antwort.",
    ],
    asks: [
        "Können Sie die Zahlen bis heute Abend bestätigen?",
        "Bitte schicken Sie mir die aktualisierte Datei, sobald sie vorliegt.",
        "Haben Sie morgen 20 Minuten, um es durchzugehen?",
        "Geben Sie Bescheid, falls auf Ihrer Seite etwas fehlt.",
        "Bitte prüfen Sie den angehängten Entwurf und markieren Sie Auffälligkeiten.",
        "Können Sie die zuständige Person in Ihrem Team einbinden?",
    ],
    role_line: "Aus Sicht von {role} ist der Zeitplan noch offen.",
    close_formal: "Mit freundlichen Grüßen",
    close_casual: "Viele Grüße",
    close_direct: "Danke",
    ps: "PS: Donnerstagnachmittag bin ich nicht im Büro.",
};

/// Languages the templates speak (others fall back to English).
pub const TEMPLATE_LANGUAGES: [&str; 5] = ["en", "es", "pt", "fr", "de"];

fn lang(code: &str) -> &'static Lang {
    match code {
        "es" => &ES,
        "pt" => &PT,
        "fr" => &FR,
        "de" => &DE,
        _ => &EN,
    }
}

fn first_name(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or(name)
}

fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .flat_map(char::to_uppercase)
        .collect()
}

/// A mannerism the templates can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quirk {
    Numbered,
    Bullets,
    Initials,
    Postscript,
    Exclaim,
    Lowercase,
}

fn quirk_of(mannerism: &str) -> Option<Quirk> {
    let m = mannerism.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if has(&["initial"]) {
        Some(Quirk::Initials)
    } else if has(&["number", "numer", "numér"]) {
        Some(Quirk::Numbered)
    } else if has(&["bullet", "list", "viñeta", "puce"]) {
        Some(Quirk::Bullets)
    } else if has(&["p.s", "ps:", "postscript", "post-script", "p.d"]) {
        Some(Quirk::Postscript)
    } else if has(&["exclam", "!"]) {
        Some(Quirk::Exclaim)
    } else if has(&["lowercase", "lower case", "minúscula", "minuscule"]) {
        Some(Quirk::Lowercase)
    } else {
        None
    }
}

/// A template-written email: subject, body (em-dash policy applied) and the mannerisms that
/// shaped it.
pub fn template_email<R: Rng + ?Sized>(
    sender: &Persona,
    recipient: &Persona,
    plan: &ThreadPlan,
    rng: &mut R,
) -> (ParsedEmail, Vec<String>) {
    let l = lang(sender.language_or("en"));
    let mut used: Vec<String> = Vec::new();
    let mut quirks: Vec<Quirk> = Vec::new();
    for m in &sender.mannerisms {
        if let Some(q) = quirk_of(m) {
            if !quirks.contains(&q) {
                quirks.push(q);
                used.push(m.clone());
            }
        }
    }

    let (subject, opener) = match plan {
        ThreadPlan::New { context_hint, .. } => {
            let idx = CONTEXT_HINTS
                .iter()
                .position(|h| h == context_hint)
                .unwrap_or_else(|| rng.gen_range(0..CONTEXT_HINTS.len()));
            let (s, o) = l.topics[idx % l.topics.len()];
            (s.to_owned(), o.to_owned())
        }
        ThreadPlan::Reply { subject, .. } => (
            subject.clone(),
            (*l.reply_openers.choose(rng).unwrap_or(&l.reply_openers[0])).to_owned(),
        ),
    };
    let opener = if quirks.contains(&Quirk::Exclaim) {
        match opener.strip_suffix('.') {
            Some(s) => format!("{s}!"),
            None => opener,
        }
    } else {
        opener
    };

    let greeting = match sender.tone {
        Tone::Formal => l.greet_formal.replace("{name}", &recipient.name),
        Tone::Direct => format!("{},", first_name(&recipient.name)),
        _ => l
            .greet_casual
            .replace("{first}", first_name(&recipient.name)),
    };
    let mut asks: Vec<&str> = l.asks.to_vec();
    asks.shuffle(rng);
    let n_asks = match sender.tone {
        Tone::Direct => 1,
        Tone::Technical => 3,
        _ => rng.gen_range(1..=2),
    };
    asks.truncate(n_asks);

    let mut body = String::with_capacity(512);
    body.push_str(&greeting);
    body.push_str("\n\n");
    body.push_str(&opener);
    if sender.tone == Tone::Technical || rng.gen_bool(0.4) {
        body.push(' ');
        body.push_str(&l.role_line.replace("{role}", &sender.role));
    }
    body.push_str("\n\n");
    for (i, a) in asks.iter().enumerate() {
        if quirks.contains(&Quirk::Numbered) {
            body.push_str(&format!("{}. {a}\n", i + 1));
        } else if quirks.contains(&Quirk::Bullets) {
            body.push_str(&format!("- {a}\n"));
        } else {
            body.push_str(a);
            body.push(if i + 1 == asks.len() { '\n' } else { ' ' });
        }
    }
    if quirks.contains(&Quirk::Lowercase) {
        body = body.to_lowercase();
    }
    body.push('\n');
    body.push_str(match sender.tone {
        Tone::Formal | Tone::Technical => l.close_formal,
        Tone::Direct => l.close_direct,
        Tone::Casual | Tone::Custom => l.close_casual,
    });
    body.push('\n');
    match sender.signature.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(sig) => body.push_str(sig.trim_end()),
        None if quirks.contains(&Quirk::Initials) => body.push_str(&initials(&sender.name)),
        None => {
            body.push_str(&sender.name);
            body.push('\n');
            body.push_str(&sender.role);
        }
    }
    if quirks.contains(&Quirk::Postscript) {
        body.push_str("\n\n");
        body.push_str(l.ps);
    }
    body.push('\n');
    (
        ParsedEmail {
            subject,
            body: apply_em_dash_policy(sender, &body),
        },
        used,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use serde_json::json;

    fn persona(lang: &str, extra: serde_json::Value) -> Persona {
        let mut v = json!({"name": "Marta Quiroga", "email": "mq@acme.example", "role": "Finance controller",
            "language": lang});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        Persona::from_value(&v).unwrap()
    }

    fn new_plan(hint: &str) -> ThreadPlan {
        ThreadPlan::New {
            thread_id: "t".into(),
            context_hint: hint.into(),
        }
    }

    #[test]
    fn every_language_writes_its_own_mail() {
        let bo = persona("en", json!({"name": "Bo Lund", "email": "bo@acme.example"}));
        let expect = [
            ("en", "Kind regards"),
            ("es", "Un cordial saludo"),
            ("pt", "Atenciosamente"),
            ("fr", "Cordialement"),
            ("de", "Mit freundlichen Grüßen"),
        ];
        for (code, closing) in expect {
            let p = persona(code, json!({}));
            for seed in 0..20 {
                let (m, _) = template_email(
                    &p,
                    &bo,
                    &new_plan(CONTEXT_HINTS[seed as usize % 16]),
                    &mut StdRng::seed_from_u64(seed),
                );
                assert!(m.body.contains(closing), "{code}: {}", m.body);
                assert!(
                    m.body.contains("Bo Lund") || m.body.contains("Bo"),
                    "{code}"
                );
                assert!(
                    m.body.ends_with("Finance controller\n"),
                    "{code}: {}",
                    m.body
                );
                assert!(!m.subject.is_empty() && !m.subject.starts_with("Re:"));
                assert!(!m.body.contains('—'));
            }
        }
        let (es, _) = template_email(
            &persona("es", json!({})),
            &bo,
            &new_plan(CONTEXT_HINTS[0]),
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(es.subject, "Revisión del presupuesto del T3");
        // unknown language → English
        let (sv, _) = template_email(
            &persona("sv", json!({})),
            &bo,
            &new_plan(CONTEXT_HINTS[0]),
            &mut StdRng::seed_from_u64(1),
        );
        assert_eq!(sv.subject, "Q3 budget review");
    }

    #[test]
    fn voice_follows_the_persona() {
        let bo = persona("en", json!({"name": "Bo Lund", "email": "bo@acme.example"}));
        let p = persona(
            "es",
            json!({"tone": "custom", "tone_custom": "dry",
            "mannerisms": ["numbers every request", "signs off with just her initials", "hates meetings"],
            "signature": null}),
        );
        let (m, used) = template_email(
            &p,
            &bo,
            &new_plan(CONTEXT_HINTS[2]),
            &mut StdRng::seed_from_u64(4),
        );
        assert!(m.body.contains("\n1. "), "{}", m.body);
        assert!(m.body.trim_end().ends_with("MQ"), "{}", m.body);
        assert_eq!(
            used,
            vec!["numbers every request", "signs off with just her initials"]
        );
        let sig = persona(
            "de",
            json!({"signature": "MQ\nControlling", "mannerisms": ["adds a P.S."]}),
        );
        let reply = ThreadPlan::Reply {
            thread_id: "t".into(),
            parent_message_id: "<a@b>".into(),
            references: "<a@b>".into(),
            subject: "Re: Überprüfung".into(),
            parent_subject: "Überprüfung".into(),
        };
        let (m, _) = template_email(&sig, &bo, &reply, &mut StdRng::seed_from_u64(2));
        assert_eq!(m.subject, "Re: Überprüfung");
        assert!(m.body.contains("MQ\nControlling"));
        assert!(m.body.contains("PS: Donnerstag"));
        let direct = persona("en", json!({"tone": "direct"}));
        let (m, _) = template_email(
            &direct,
            &bo,
            &new_plan(CONTEXT_HINTS[0]),
            &mut StdRng::seed_from_u64(2),
        );
        assert!(m.body.starts_with("Bo,\n"));
    }
}
