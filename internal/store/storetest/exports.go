package storetest

import (
	"errors"
	"reflect"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

// exportTests are Run's tests of export jobs; each gets a fresh store.
var exportTests = []conformanceTest{
	{"ExportJobs", testExportJobs},
	{"ExportJobsExpired", testExportJobsExpired},
	{"SearchAfterID", testSearchAfterID},
}

func exportJob(id string, created, expires int) store.ExportJob {
	return store.ExportJob{
		ID: id, Client: "client-" + id, User: "user-" + id, Request: "/fhir/$export?_type=Patient",
		State: store.ExportRunning, Progress: "0", KEKID: "kek-1", Key: []byte("wrapped\x00\xff" + id),
		Created: at(created), Updated: at(created), Expires: at(expires),
	}
}

// testExportJobs: a job reads back as stored; a duplicate id conflicts;
// updates apply only while it runs; a deleted job is gone for reads,
// updates and deletes.
func testExportJobs(t *testing.T, s store.Store) {
	ctx := t.Context()
	j := exportJob("job1", 10, 100)
	if err := s.CreateExportJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateExportJob(ctx, j); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate CreateExportJob = %v, want ErrConflict", err)
	}
	got, err := s.ExportJob(ctx, "job1")
	if err != nil || !reflect.DeepEqual(got, j) {
		t.Fatalf("ExportJob = %+v, %v; want %+v", got, err, j)
	}
	if _, err := s.ExportJob(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ExportJob(unknown) = %v, want ErrNotFound", err)
	}
	j.Progress, j.Updated = "Patient 3", at(11)
	if err := s.UpdateExportJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	j.State, j.Output, j.Updated, j.Expires = store.ExportComplete, []byte(`[{"type":"Patient","count":3}]`), at(12), at(3612)
	if err := s.UpdateExportJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ExportJob(ctx, "job1"); err != nil || !reflect.DeepEqual(got, j) {
		t.Fatalf("after updates ExportJob = %+v, %v; want %+v", got, err, j)
	}
	late := j
	late.State, late.Progress = store.ExportRunning, "late"
	if err := s.UpdateExportJob(ctx, late); !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateExportJob of a finished job = %v, want ErrConflict", err)
	}
	if got, _ := s.ExportJob(ctx, "job1"); got.Progress != j.Progress {
		t.Errorf("a finished job's progress changed to %q", got.Progress)
	}
	if err := s.DeleteExportJob(ctx, "job1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExportJob(ctx, "job1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ExportJob after delete = %v, want ErrNotFound", err)
	}
	if err := s.UpdateExportJob(ctx, late); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateExportJob after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeleteExportJob(ctx, "job1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteExportJob = %v, want ErrNotFound", err)
	}
}

// testExportJobsExpired: jobs expired before a time, oldest first, bounded.
func testExportJobsExpired(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, j := range []store.ExportJob{exportJob("c", 1, 30), exportJob("a", 1, 10), exportJob("b", 1, 20), exportJob("d", 1, 40)} {
		if err := s.CreateExportJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(js []store.ExportJob) []string {
		var out []string
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	got, err := s.ExpiredExportJobs(ctx, at(31), 10)
	if err != nil || !reflect.DeepEqual(ids(got), []string{"a", "b", "c"}) {
		t.Errorf("ExpiredExportJobs(31) = %v, %v", ids(got), err)
	}
	got, err = s.ExpiredExportJobs(ctx, at(31), 2)
	if err != nil || !reflect.DeepEqual(ids(got), []string{"a", "b"}) {
		t.Errorf("ExpiredExportJobs(31, 2) = %v, %v", ids(got), err)
	}
	if got, err := s.ExpiredExportJobs(ctx, at(10), 10); err != nil || len(got) != 0 {
		t.Errorf("ExpiredExportJobs(10) = %v, %v; expiry is exclusive", ids(got), err)
	}
}

// testSearchAfterID: keyset paging by id visits every resource once, in
// id order, and composes with the compartment filter.
func testSearchAfterID(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := []string{"a1", "a2", "b1", "B2", "c-1", "c.2", "z9"}
	for i, id := range want {
		r := res("Observation", id, 1, i)
		if i%2 == 0 {
			r.Compartment = "p1"
		}
		put(t, s, r, nil)
	}
	first, err := s.Search(ctx, store.Query{Type: "Observation", Count: 100, Sort: []store.SortKey{{Param: "_id"}}})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range first.Resources {
		order = append(order, r.ID)
	}
	var paged []string
	after := ""
	for {
		page, err := s.Search(ctx, store.Query{Type: "Observation", AfterID: after, Count: 2, Sort: []store.SortKey{{Param: "_id"}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Resources {
			paged = append(paged, r.ID)
		}
		if !page.More {
			break
		}
		after = page.Resources[len(page.Resources)-1].ID
	}
	if !reflect.DeepEqual(paged, order) || len(paged) != len(want) {
		t.Errorf("keyset pages %v, want %v", paged, order)
	}
	p1 := "p1"
	page, err := s.Search(ctx, store.Query{Type: "Observation", Compartment: &p1, AfterID: order[0], Count: 100, Sort: []store.SortKey{{Param: "_id"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Resources {
		if r.Compartment != "p1" || r.ID == order[0] {
			t.Errorf("AfterID with a compartment returned %s in %q", r.ID, r.Compartment)
		}
	}
}
