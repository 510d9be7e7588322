package search

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// NormalizeString is the normal form of string search values: it folds case,
// strips accents and diacritics from Latin letters (é -> e, ß -> ss, Ø -> o),
// drops combining marks, and collapses runs of white space into one space,
// trimmed. Letters outside the fold
// table keep their identity apart from case folding.
func NormalizeString(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if r == utf8.RuneError {
			continue
		}
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r)) // #nosec G115 -- only ASCII runes reach this branch (checked above)
			continue
		}
		if f := foldLatin(r); f != "" {
			b.WriteString(f)
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// foldLatin maps precomposed Latin letters (Latin-1 Supplement and Latin
// Extended-A) to their unaccented lower-case ASCII spelling.
func foldLatin(r rune) string {
	switch r {
	case 'À', 'Á', 'Â', 'Ã', 'Ä', 'Å', 'à', 'á', 'â', 'ã', 'ä', 'å', 'Ā', 'ā', 'Ă', 'ă', 'Ą', 'ą':
		return "a"
	case 'Æ', 'æ':
		return "ae"
	case 'Ç', 'ç', 'Ć', 'ć', 'Ĉ', 'ĉ', 'Ċ', 'ċ', 'Č', 'č':
		return "c"
	case 'Ď', 'ď', 'Đ', 'đ', 'Ð', 'ð':
		return "d"
	case 'È', 'É', 'Ê', 'Ë', 'è', 'é', 'ê', 'ë', 'Ē', 'ē', 'Ĕ', 'ĕ', 'Ė', 'ė', 'Ę', 'ę', 'Ě', 'ě':
		return "e"
	case 'Ĝ', 'ĝ', 'Ğ', 'ğ', 'Ġ', 'ġ', 'Ģ', 'ģ':
		return "g"
	case 'Ĥ', 'ĥ', 'Ħ', 'ħ':
		return "h"
	case 'Ì', 'Í', 'Î', 'Ï', 'ì', 'í', 'î', 'ï', 'Ĩ', 'ĩ', 'Ī', 'ī', 'Ĭ', 'ĭ', 'Į', 'į', 'İ', 'ı':
		return "i"
	case 'Ĳ', 'ĳ':
		return "ij"
	case 'Ĵ', 'ĵ':
		return "j"
	case 'Ķ', 'ķ', 'ĸ':
		return "k"
	case 'Ĺ', 'ĺ', 'Ļ', 'ļ', 'Ľ', 'ľ', 'Ŀ', 'ŀ', 'Ł', 'ł':
		return "l"
	case 'Ñ', 'ñ', 'Ń', 'ń', 'Ņ', 'ņ', 'Ň', 'ň', 'ŉ', 'Ŋ', 'ŋ':
		return "n"
	case 'Ò', 'Ó', 'Ô', 'Õ', 'Ö', 'Ø', 'ò', 'ó', 'ô', 'õ', 'ö', 'ø', 'Ō', 'ō', 'Ŏ', 'ŏ', 'Ő', 'ő':
		return "o"
	case 'Œ', 'œ':
		return "oe"
	case 'Ŕ', 'ŕ', 'Ŗ', 'ŗ', 'Ř', 'ř':
		return "r"
	case 'Ś', 'ś', 'Ŝ', 'ŝ', 'Ş', 'ş', 'Š', 'š', 'ſ':
		return "s"
	case 'ß':
		return "ss"
	case 'Ţ', 'ţ', 'Ť', 'ť', 'Ŧ', 'ŧ':
		return "t"
	case 'Þ', 'þ':
		return "th"
	case 'Ù', 'Ú', 'Û', 'Ü', 'ù', 'ú', 'û', 'ü', 'Ũ', 'ũ', 'Ū', 'ū', 'Ŭ', 'ŭ', 'Ů', 'ů', 'Ű', 'ű', 'Ų', 'ų':
		return "u"
	case 'Ŵ', 'ŵ':
		return "w"
	case 'Ý', 'ý', 'ÿ', 'Ÿ', 'Ŷ', 'ŷ':
		return "y"
	case 'Ź', 'ź', 'Ż', 'ż', 'Ž', 'ž':
		return "z"
	}
	return ""
}
