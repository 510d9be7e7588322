package search

import (
	"net/url"
	"testing"
)

func benchmarkExtract(b *testing.B, rt string) {
	r := newRegistry(b)
	res := firstOf(b, rt, func(m map[string]any) bool {
		if rt != "Observation" {
			return true
		}
		_, ok := m["valueQuantity"]
		return ok
	})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Extract(rt, res); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtractObservation(b *testing.B) { benchmarkExtract(b, "Observation") }
func BenchmarkExtractPatient(b *testing.B)     { benchmarkExtract(b, "Patient") }

func BenchmarkParseQuery(b *testing.B) {
	r := newRegistry(b)
	params, err := url.ParseQuery("patient=Patient/123&code=http://loinc.org|8302-2,http://loinc.org|29463-7&date=ge2020-01-01&date=lt2021&_sort=-date&_count=100&_include=Observation:encounter")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ParseQuery("Observation", params, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewRegistry(b *testing.B) {
	for b.Loop() {
		if _, err := NewRegistry(); err != nil {
			b.Fatal(err)
		}
	}
}
