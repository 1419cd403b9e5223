DROP TABLE realism_config;
DROP TABLE synthetic_files;
DROP TABLE orchestrator_events;
DROP TABLE fleet_deckies;
