"""Account management: sign-up, sign-in and sessions, password and second-factor
changes, and the accounts an admin manages. The workflows live here because they need
both the stores (datasources/) and the security primitives (auth/), which know
nothing of each other."""
