"""Authentication (tokens, passwords, MFA, throttling) and authorization (roles, the
access policy table, permission classes)."""
