"""aih-pathways: a care-pathway engine for autoimmune hepatitis."""
