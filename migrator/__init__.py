"""The staged migration from the legacy CRUD database to the event-sourced system."""
