"""One demo account per role, so a newcomer can sign in as each and see what it sees.

Passwords are random per installation and kept, with the admin's TOTP secret and
recovery codes, in `<data dir>/demo-logins.json` (readable only by this user); the
server prints them at every start. They are demo credentials for local data only.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from pathlib import Path

from auth import mfa
from auth.passwords import hash_password
from auth.roles import Role
from datasources.scope import AccessScope
from datasources.users import UserStore

LOGINS_FILE = "demo-logins.json"


async def create_demo_accounts(services, *, appointments: list[dict], data_dir: Path) -> None:
    # The busiest doctor, and the patient who sees them most: both have real records.
    doctor_id = Counter(a["doctorId"] for a in appointments).most_common(1)[0][0]
    patient_id = Counter(
        a["patientId"] for a in appointments if a["doctorId"] == doctor_id
    ).most_common(1)[0][0]
    users = UserStore(services.db, AccessScope.system())
    if await users.by_email(email=f"{Role.ADMIN.value.lower()}@demo.caregraph.test"):
        return  # demo data added to an existing installation keeps its accounts
    logins = []
    for role in Role:
        password = secrets.token_urlsafe(12)
        user = await users.create(
            email=f"{role.value.lower()}@demo.caregraph.test",
            password_hash=await hash_password(password, rounds=services.settings.bcrypt_rounds),
            role=role.value,
            patient_id=patient_id if role is Role.PATIENT else None,
            doctor_id=doctor_id if role is Role.DOCTOR else None,
        )
        login = {"role": role.value, "email": user["email"], "password": password}
        if role is Role.ADMIN:
            # Admins must use a second factor: this one is enrolled already.
            secret = mfa.new_secret()
            codes, hashes = mfa.new_recovery_codes()
            await users.change(
                id=user["_id"],
                revoke=False,
                changes={"mfa": {"secret": secret, "confirmed": True, "recoveryCodes": hashes}},
            )
            login.update(
                totpSecret=secret,
                recoveryCodes=codes,
                provisioningUri=mfa.provisioning_uri(secret, user["email"]),
            )
        logins.append(login)
    path = data_dir / LOGINS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as logins_file:
        json.dump(logins, logins_file, indent=2)


def describe_demo_logins(data_dir: Path) -> str | None:
    path = data_dir / LOGINS_FILE
    if not path.exists():
        return None
    lines = ["Demo logins (mutation { login(email: ..., password: ...) }):"]
    for login in json.loads(path.read_text()):
        line = f"  {login['role']:<10} {login['email']:<32} {login['password']}"
        if "totpSecret" in login:
            line += (
                f"\n             second factor: TOTP secret {login['totpSecret']} "
                f"or recovery code {login['recoveryCodes'][0]}"
            )
        lines.append(line)
    lines.append(f"  (kept in {path})")
    return "\n".join(lines)
