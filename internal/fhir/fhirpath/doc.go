// Package fhirpath is a compact FHIRPath (N1, as used by FHIR R4)
// engine over decoded FHIR JSON (map[string]any trees as fhir.Parse builds
// them).
//
// Compile parses an expression once into a tree; Evaluate runs it against
// a focus node and returns a Collection whose nodes carry their location
// (Path, and Parent/Key/Index for elements of the resource), so a caller
// can find and change what an expression selects.
//
// FHIR's JSON rules are applied: a primitive's "_name" extension object
// belongs to the same node (hasValue() is false for a primitive given by
// extensions alone), choice elements are reached by their element name
// (value finds valueQuantity) when a Model types the tree, %resource,
// %rootResource, %context, %ucum, %sct and %loinc are defined, and
// resolve() finds contained resources ("#id") and, through Env.Resolve,
// whatever else the caller allows.
//
// What it guarantees:
//   - Compile bounds its input (MaxExpressionBytes, nesting depth) and
//     rejects unknown functions with an *UnsupportedError, so a caller
//     knows ahead of evaluation which expressions it cannot run.
//   - Evaluation is bounded: every node visited or built counts against
//     Env.MaxSteps, and ErrTooCostly ends an evaluation that exceeds it.
//     Regular expressions use RE2 (linear time).
//   - It performs no I/O, keeps no global mutable state, and an Expression
//     is safe for concurrent use.
//
// What it does not do: date and time arithmetic, unit conversion between
// quantities of different units (such comparisons are empty), terminology
// functions (memberOf, subsumes), conformsTo, and the FHIRPath type
// reflection functions (type()).
package fhirpath
