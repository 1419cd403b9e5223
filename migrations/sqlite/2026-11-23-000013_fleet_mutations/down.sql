DROP TABLE fleet_emitted_services;
