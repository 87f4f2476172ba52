"""Headquarters' side of the clinic registry: registering, rotating and listing clinics."""
