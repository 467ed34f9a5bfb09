"""The audit trail of PHI access: what an audit record is, the one builder that makes
them, the HMAC chain that makes tampering evident, and FHIR AuditEvent export.

Pure code: no I/O. Storage is datasources/audit_log.py; the per-request buffer that
collects reads is audit/buffer.py, filled by the field extension in audit/fields.py.
"""
