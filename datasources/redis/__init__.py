"""Every Redis-backed store, in one place: the client factory, the login and sign-up
throttle counters, automatic persisted queries, the report cache (and its write
generation), the medication-safety results and the bulk-export guard. Each degrades on
its own when Redis is down."""
