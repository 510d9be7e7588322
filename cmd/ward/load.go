package main

import (
	"context"
	"io"
	"path/filepath"

	"github.com/wardhealth/ward/internal/loadgen"
)

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("load", "Posts every transaction Bundle in --dir to a running Ward over HTTPS, reads back a\n"+
		"sample by id and by search, and prints resources/s, requests/s and p50/p99 latency.")
	dir := fs.String("dir", "", "directory of FHIR transaction Bundles (*.json)")
	creds := fs.String("credentials", filepath.Join("ward-data", "dev-credentials.json"), "credentials file (ward serve --dev writes one)")
	conc := fs.Int("concurrency", 4, "ingest workers")
	readConc := fs.Int("read-concurrency", 16, "read and search workers")
	reads := fs.Int("reads", 20000, "read-by-id requests (negative: skip)")
	searches := fs.Int("searches", 2000, "search requests (negative: skip)")
	asJSON := fs.Bool("json", false, "print the report as one JSON line")
	http1 := fs.Bool("http1", false, "give each worker its own HTTP/1.1 connection instead of sharing HTTP/2 connections")
	cpuProfile := fs.String("cpu-profile", "", "write a Go CPU profile of the load client to this file")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	tuneGC()
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *dir == "" {
		return usagef("--dir is required")
	}
	cfg, err := loadgen.LoadCredentials(*creds)
	if err != nil {
		return err
	}
	cfg.Dir, cfg.Concurrency, cfg.ReadConcurrency = *dir, *conc, *readConc
	cfg.Reads, cfg.Searches, cfg.Out, cfg.JSON, cfg.HTTP1 = *reads, *searches, stdout, *asJSON, *http1
	_, err = loadgen.Run(ctx, cfg)
	return err
}
