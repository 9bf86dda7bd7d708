-- The legacy CRUD database lives beside the event store (POSTGRES_DB=es) on the same server.
CREATE DATABASE legacy;
