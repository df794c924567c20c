"""The HL7 v2 lab feed: an MLLP listener that takes ORU^R01 lab results from a laboratory system
and records them through the same batch service as a FHIR Bundle, answering each message with
an ACK only after its results are committed.

`mllp` frames bytes, `oru` reads a message, `site_feeds` holds each site's feed data (sending
facilities, time zone, local codes), `results` turns observations into lab results,
`acknowledgements` writes the ACK, `receiver` answers one message, `listener` serves TCP and
`cli` is `aihp hl7`.
"""
