-- What the reconciler last emitted as a decky mutation (platform.md §6.5, issue #20): one row
-- per decky that exists in the substrate, removed when its retirement is emitted. A restarted
-- reconciler compares what it observes against these rows, so it never re-emits a transition.
CREATE TABLE fleet_emitted_services (
    host_uuid TEXT NOT NULL DEFAULT 'local',
    name TEXT NOT NULL,
    services TEXT NOT NULL DEFAULT '[]',
    last_mutated DOUBLE PRECISION NOT NULL DEFAULT 0,
    emitted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (host_uuid, name)
);
