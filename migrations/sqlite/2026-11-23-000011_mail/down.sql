DROP TABLE IF EXISTS orchestrator_emails;
