"""Reminder notifications: what a reminder email says to a patient, clinician or coordinator."""
