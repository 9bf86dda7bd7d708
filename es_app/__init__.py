"""The event-sourced CQRS user service: domain, event store, projections, API and worker."""
