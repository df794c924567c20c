"""The HL7 v2 lab feed over a real TCP socket."""
