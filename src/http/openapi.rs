pub fn document_json() -> String {
    "{}".into()
}
