"""CDS Hooks 2.0 for external prescribing systems: FHIR MedicationRequests in, cards out."""
