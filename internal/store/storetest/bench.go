package storetest

import (
	"fmt"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

// BundleSize is the number of resources BenchPutVersion writes per
// transaction: about one Synthea patient bundle.
const BundleSize = 250

// benchIndex returns 15 index rows shaped like an Observation's.
func benchIndex(i int) []store.IndexEntry {
	return []store.IndexEntry{
		tok("code", loinc, fmt.Sprintf("%d-%d", i%500, i%7)),
		tok("category", "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"),
		tok("status", "", "final"),
		ref(fmt.Sprintf("Patient/p%d", i%40)),
		{Param: "patient", Kind: store.KindReference, System: "Patient", Value: fmt.Sprintf("Patient/p%d", i%40)},
		{Param: "encounter", Kind: store.KindReference, System: "Encounter", Value: fmt.Sprintf("Encounter/e%d", i%900)},
		date(float64(1.6e9+i), float64(1.6e9+i)),
		qty(ucum, "mg", float64(i%300)),
		{Param: "combo-code", Kind: store.KindToken, System: loinc, Value: fmt.Sprintf("%d-%d", i%500, i%7)},
		{Param: "_profile", Kind: store.KindURI, Value: "http://hl7.org/fhir/StructureDefinition/vitalsigns"},
		{Param: "identifier", Kind: store.KindBlind, Value: fmt.Sprintf("%032x", i)},
		str("code-text", "body weight"),
		tok("data-absent-reason", "", "unknown"),
		{Param: "value-concept", Kind: store.KindToken, System: snomed, Value: fmt.Sprint(i % 1000)},
		{Param: "performer", Kind: store.KindReference, System: "Practitioner", Value: fmt.Sprintf("Practitioner/d%d", i%30)},
	}
}

// BenchPutVersion measures writing new resources with 15 index rows each, in
// transactions of BundleSize resources. One op is one resource.
func BenchPutVersion(b *testing.B, s store.Store) {
	ctx := b.Context()
	body := make([]byte, 1200)
	var tx store.Tx
	i := 0
	for b.Loop() {
		if tx == nil {
			var err error
			if tx, err = s.Begin(ctx); err != nil {
				b.Fatal(err)
			}
		}
		r := store.Resource{Type: "Observation", ID: fmt.Sprintf("obs-%d", i), Version: 1, Compartment: fmt.Sprintf("p%d", i%40), LastUpdated: at(i), Body: body}
		if err := tx.PutVersion(ctx, r, benchIndex(i)); err != nil {
			b.Fatal(err)
		}
		i++
		if i%BundleSize == 0 {
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			tx = nil
		}
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchCurrent measures reading the current version of one of 1,000 resources.
func BenchCurrent(b *testing.B, s store.Store) {
	ctx := b.Context()
	tx, err := s.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	for i := range n {
		r := store.Resource{Type: "Observation", ID: fmt.Sprintf("obs-%d", i), Version: 1, LastUpdated: at(i), Body: make([]byte, 1200)}
		if err := tx.PutVersion(ctx, r, benchIndex(i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		if _, err := s.Current(ctx, "Observation", fmt.Sprintf("obs-%d", i%n)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
