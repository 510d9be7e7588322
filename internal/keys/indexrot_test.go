package keys_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
)

// TestIndexRotationSteps walks a blind-index rotation through the key file
// as two processes share it: the announced generation answers searches
// before writes use it, the cursor moves only from where it is, and at the
// end the old generation is gone from the file.
func TestIndexRotationSteps(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := keys.CreateLocalFile(path, keys.LocalParams{}, rand.Reader); err != nil {
		t.Fatal(err)
	}
	a, err := keys.OpenLocalFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.OpenLocalFile(path, nil) // another process
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	keys.SetClock(a, func() time.Time { return now })
	ba, bb := a.BlindIndex(), b.BlindIndex()
	old := ba.Sum("Patient", "family", "w:smith")

	id, err := a.AnnounceIndex(ctx)
	if err != nil || id != "index-2" {
		t.Fatalf("announce: %q %v", id, err)
	}
	if _, err := a.AnnounceIndex(ctx); err == nil {
		t.Fatal("a second rotation started while one is in progress")
	}
	if err := b.Refresh(); err != nil {
		t.Fatal(err)
	}
	for _, bi := range []*keys.BlindIndex{ba, bb} {
		if got := bi.Sum("Patient", "family", "w:smith"); got != old {
			t.Fatal("an announced generation is used for writes")
		}
		sums := bi.Sums("Patient", "family", "w:smith")
		if len(sums) != 2 || sums[0] != old || sums[1] == old {
			t.Fatalf("announced: searches compute %d hashes, want the old then the new", len(sums))
		}
	}
	if err := a.StartReindex(ctx, id, now.Add(keys.AnnounceWait/2)); err == nil {
		t.Fatal("writes switched before every process could see the announcement")
	}
	start := now.Add(keys.AnnounceWait)
	if err := a.StartReindex(ctx, id, start); err != nil {
		t.Fatal(err)
	}
	if err := b.StartReindex(ctx, id, start); !errors.Is(err, keys.ErrRotationMoved) {
		t.Fatalf("second start: %v, want ErrRotationMoved", err)
	}
	if err := b.Refresh(); err != nil {
		t.Fatal(err)
	}
	newSum := bb.Sum("Patient", "family", "w:smith")
	if newSum == old || bb.Generation() != id {
		t.Fatal("a re-indexing generation is not used for writes")
	}
	if sums := bb.Sums("Patient", "family", "w:smith"); !slices.Equal(sums, []string{newSum, old}) {
		t.Fatal("re-indexing: searches do not compute the new and the old hash")
	}

	rot, ok, err := b.IndexRotation()
	if err != nil || !ok || rot.State != "reindexing" || rot.Cursor.Pass != 1 || !rot.Cursor.Started.Equal(start.Truncate(time.Second)) {
		t.Fatalf("rotation: %+v %v %v", rot, ok, err)
	}
	c1 := keys.ReindexCursor{Pass: 1, AfterType: "Patient", AfterID: "p9", Done: 500}
	if err := a.ReindexProgress(ctx, id, rot.Cursor, c1); err != nil {
		t.Fatal(err)
	}
	if err := b.ReindexProgress(ctx, id, rot.Cursor, c1); !errors.Is(err, keys.ErrRotationMoved) {
		t.Fatalf("a stale cursor moved: %v", err)
	}
	if err := a.FinishReindex(ctx, id); err == nil {
		t.Fatal("finished before the second pass")
	}
	// A reopened file (a restarted server) resumes from the cursor.
	c, err := keys.OpenLocalFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	rot, _, _ = c.IndexRotation()
	if rot.Cursor.AfterType != "Patient" || rot.Cursor.AfterID != "p9" || rot.Cursor.Done != 500 {
		t.Fatalf("cursor after reopen: %+v", rot.Cursor)
	}
	c2 := keys.ReindexCursor{Pass: 2, Done: 700}
	if err := c.ReindexProgress(ctx, id, rot.Cursor, c2); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishReindex(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.IndexRotation(); ok {
		t.Fatal("rotation still in progress after finishing")
	}
	if err := a.Refresh(); err != nil {
		t.Fatal(err)
	}
	if sums := ba.Sums("Patient", "family", "w:smith"); !slices.Equal(sums, []string{newSum}) {
		t.Fatal("after the rotation searches still compute the old hash")
	}
	gs := a.Generations(keys.KindIndex)
	if len(gs) != 1 || gs[0].ID != id || gs[0].State != "" {
		t.Fatalf("index generations after the rotation: %+v", gs)
	}
	// The first root stays as the origin root (ledger pseudonyms); the
	// secret of any later generation leaves the file when it retires.
	if !a.IndexKey().Equal(c.IndexKey()) {
		t.Fatal("the origin root changed")
	}
	oldSecret := indexSecret(t, path, id)
	id3, err := a.AnnounceIndex(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.StartReindex(ctx, id3, start.Add(keys.AnnounceWait)); err != nil {
		t.Fatal(err)
	}
	rot, _, _ = a.IndexRotation()
	if err := a.ReindexProgress(ctx, id3, rot.Cursor, keys.ReindexCursor{Pass: 2}); err != nil {
		t.Fatal(err)
	}
	if err := a.FinishReindex(ctx, id3); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, oldSecret) {
		t.Fatal("the retired index secret is still in the key file")
	}
}

// indexSecret returns the base64 text of a generation's secret, as it
// appears in an unsealed key file.
func indexSecret(t *testing.T, path, id string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kf struct {
		Secrets struct {
			Index []struct {
				ID     string
				Secret []byte
			}
		}
	}
	if err := json.Unmarshal(raw, &kf); err != nil {
		t.Fatal(err)
	}
	for _, g := range kf.Secrets.Index {
		if g.ID == id && len(g.Secret) == 32 {
			return []byte(base64.StdEncoding.EncodeToString(g.Secret))
		}
	}
	t.Fatalf("no generation %s in the key file", id)
	return nil
}
