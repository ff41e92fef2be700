#!/usr/bin/env python3
"""Validates FHIR R4 resources with fhir.resources 6.1.0 (the FHIR 4.0.1 models, pydantic 1).

Reads one JSON document on stdin: a Bundle (the Bundle whole, and each entry's resource on its
own) or a single resource. Prints one line per invalid resource with what the model refuses and
exits 1 when any is invalid; otherwise prints the count validated and exits 0.
"""
import json
import sys

import fhir.resources
from fhir.resources import construct_fhir_element

assert fhir.resources.__fhir_version__ == "4.0.1", fhir.resources.__fhir_version__

document = json.load(sys.stdin)
resources = [document]
if document.get("resourceType") == "Bundle":
    resources += [entry["resource"] for entry in document.get("entry", [])]

failures = 0
for resource in resources:
    try:
        construct_fhir_element(resource.get("resourceType"), resource)
    except Exception as error:  # pydantic's ValidationError, or an unknown resource type
        failures += 1
        said = " ".join(str(error).split())
        print(f"INVALID {resource.get('resourceType')}/{resource.get('id')}: {said[:800]}")
print(f"validated {len(resources)} resources, {failures} invalid")
sys.exit(1 if failures else 0)
