"""The URLs the facade names things by: code systems, extensions, canonical URLs.

Canonical URLs are identifiers, not addresses: the pathway version `aih@1.0.0` is the
PlanDefinition `https://aih-pathways.example/fhir/PlanDefinition/aih|1.0.0` on every server.
"""

from __future__ import annotations

CANONICAL_BASE = "https://aih-pathways.example/fhir"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"

RULES = f"{CANONICAL_BASE}/CodeSystem/aih-rules"
MILESTONES = f"{CANONICAL_BASE}/CodeSystem/aih-milestones"
STATES = f"{CANONICAL_BASE}/CodeSystem/aih-states"
TASK_KINDS = f"{CANONICAL_BASE}/CodeSystem/aih-task-kinds"
SOURCES = f"{CANONICAL_BASE}/CodeSystem/aih-sources"

WEIGHT = f"{CANONICAL_BASE}/StructureDefinition/body-weight"
FACT = f"{CANONICAL_BASE}/StructureDefinition/pathway-fact"
PATHWAY_STATE = f"{CANONICAL_BASE}/StructureDefinition/pathway-state"

PLAN_TYPE = "http://terminology.hl7.org/CodeSystem/plan-definition-type"


def plan_canonical(pathway_id: str) -> str:
    """The PlanDefinition canonical URL of a pathway (without version)."""
    return f"{CANONICAL_BASE}/PlanDefinition/{pathway_id}"


def plan_id(pathway_key: str) -> str:
    """`aih@1.0.0` -> `aih-1.0.0` (a FHIR id may not hold `@`)."""
    return pathway_key.replace("@", "-", 1)


def pathway_key(plan_definition_id: str) -> str:
    """`aih-1.0.0` -> `aih@1.0.0`; a bare pathway id (`aih`) stays as it is (the newest)."""
    head, _, version = plan_definition_id.rpartition("-")
    if head and version[:1].isdigit():
        return f"{head}@{version}"
    return plan_definition_id
