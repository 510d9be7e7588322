package search

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

var errMalformed = errors.New("malformed value")

// dateRange parses a FHIR date, dateTime or instant and returns the implicit
// range of its precision as unix seconds: lo is the first instant, hi the last
// microsecond ("2020" -> [2020-01-01T00:00:00Z, 2020-12-31T23:59:59.999999Z]).
// A value without a time zone is read as UTC. With allowMinutes, a time
// without seconds ("2020-01-02T10:30Z") is accepted, as FHIR search allows.
func dateRange(s string, allowMinutes bool) (lo, hi float64, err error) {
	num := func(from, n int) (int, bool) {
		if from+n > len(s) {
			return 0, false
		}
		v := 0
		for i := from; i < from+n; i++ {
			if !isDigit(s[i]) {
				return 0, false
			}
			v = v*10 + int(s[i]-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok {
		return 0, 0, errMalformed
	}
	month, day := 1, 1
	var hour, minute, sec, nanos int
	loc := time.UTC
	step := func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
	i := 4
	if i < len(s) {
		if s[i] != '-' {
			return 0, 0, errMalformed
		}
		if month, ok = num(i+1, 2); !ok || month < 1 || month > 12 {
			return 0, 0, errMalformed
		}
		i += 3
		step = func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	}
	if i < len(s) {
		if s[i] != '-' {
			return 0, 0, errMalformed
		}
		if day, ok = num(i+1, 2); !ok || day < 1 || day > daysIn(year, month) {
			return 0, 0, errMalformed
		}
		i += 3
		step = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	}
	if i < len(s) {
		if s[i] != 'T' {
			return 0, 0, errMalformed
		}
		if hour, ok = num(i+1, 2); !ok || hour > 23 || i+3 >= len(s) || s[i+3] != ':' {
			return 0, 0, errMalformed
		}
		if minute, ok = num(i+4, 2); !ok || minute > 59 {
			return 0, 0, errMalformed
		}
		i += 6
		unit := time.Minute
		if i < len(s) && s[i] == ':' {
			if sec, ok = num(i+1, 2); !ok || sec > 60 {
				return 0, 0, errMalformed
			}
			if sec == 60 {
				sec = 59 // leap second: clamp
			}
			i += 3
			unit = time.Second
			if i < len(s) && s[i] == '.' {
				j := i + 1
				for j < len(s) && isDigit(s[j]) {
					j++
				}
				digits := s[i+1 : j]
				if len(digits) == 0 || len(digits) > 9 {
					return 0, 0, errMalformed
				}
				n, _ := strconv.Atoi(digits)
				unit = time.Second
				for range digits {
					unit /= 10
				}
				nanos = n * int(unit)
				i = j
			}
		} else if !allowMinutes {
			return 0, 0, errMalformed
		}
		switch {
		case i == len(s):
		case s[i] == 'Z' && i+1 == len(s):
		case (s[i] == '+' || s[i] == '-') && len(s) == i+6 && s[i+3] == ':':
			oh, ok1 := num(i+1, 2)
			om, ok2 := num(i+4, 2)
			if !ok1 || !ok2 || oh > 14 || om > 59 {
				return 0, 0, errMalformed
			}
			off := oh*3600 + om*60
			if s[i] == '-' {
				off = -off
			}
			loc = time.FixedZone("", off)
		default:
			return 0, 0, errMalformed
		}
		step = func(t time.Time) time.Time { return t.Add(unit) }
	}
	start := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, loc)
	end := step(start).Add(-time.Microsecond)
	if end.Before(start) { // sub-microsecond precision
		end = start
	}
	return unixSeconds(start), unixSeconds(end), nil
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1e6
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// decimalRange parses a decimal and returns its value and the implicit range
// of its precision: "1.5" -> [1.45, 1.55), "100" -> [99.5, 100.5),
// "1.50e2" -> [149.5, 150.5). hi is exclusive.
func decimalRange(s string) (v, lo, hi float64, err error) {
	if s == "" || len(s) > 64 {
		return 0, 0, 0, errMalformed
	}
	mant, exp := s, 0
	if k := strings.IndexAny(s, "eE"); k >= 0 {
		mant = s[:k]
		e, perr := strconv.Atoi(s[k+1:])
		if perr != nil || e > 308 || e < -308 {
			return 0, 0, 0, errMalformed
		}
		exp = e
	}
	digits := strings.TrimPrefix(strings.TrimPrefix(mant, "-"), "+")
	decimals := 0
	if k := strings.IndexByte(digits, '.'); k >= 0 {
		decimals = len(digits) - k - 1
		digits = digits[:k] + digits[k+1:]
	}
	if digits == "" {
		return 0, 0, 0, errMalformed
	}
	for i := 0; i < len(digits); i++ {
		if !isDigit(digits[i]) {
			return 0, 0, 0, errMalformed
		}
	}
	v, err = strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, 0, errMalformed
	}
	half := 0.5 * math.Pow(10, float64(exp-decimals))
	return v, v - half, v + half, nil
}
