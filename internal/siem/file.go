package siem

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/wardhealth/ward/internal/secevent"
)

// File is a sink that appends each event as one line of OCSF JSON to a
// file (mode 0600), syncing the file after each batch. A file renamed or
// removed by log rotation is noticed before the next batch, and a new one
// is created at the path.
type File struct {
	path    string
	version string

	mu sync.Mutex
	f  *os.File
}

// NewFile returns a sink appending to path; it opens the file at the
// first Send.
func NewFile(path, version string) (*File, error) {
	if path == "" {
		return nil, fmt.Errorf("siem: file sink: no path")
	}
	return &File{path: path, version: version}, nil
}

// Name is "file".
func (s *File) Name() string { return "file" }

// Send appends events and syncs the file.
func (s *File) Send(_ context.Context, events []secevent.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil && s.rotated() {
		_ = s.f.Close()
		s.f = nil
	}
	if s.f == nil {
		f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("siem: file sink: %w", err)
		}
		s.f = f
	}
	var buf bytes.Buffer
	for _, e := range events {
		buf.Write(OCSF(e, s.version))
		buf.WriteByte('\n')
	}
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		_ = s.f.Close()
		s.f = nil
		return fmt.Errorf("siem: file sink: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		_ = s.f.Close()
		s.f = nil
		return fmt.Errorf("siem: file sink: %w", err)
	}
	return nil
}

// rotated says whether the path no longer names the open file.
func (s *File) rotated() bool {
	open, err := s.f.Stat()
	if err != nil {
		return true
	}
	now, err := os.Stat(s.path)
	return err != nil || !os.SameFile(open, now)
}

// Close closes the file.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
