package auth

import (
	"errors"
	"strings"
	"testing"
)

// FuzzNormalizeEmail feeds arbitrary strings to the email canonicalisation used by sign-up and
// sign-in. Properties: it never panics; a refusal is an INVALID_ARGUMENT *apiError; an accepted
// address is the trimmed, lower-cased input, at most 254 bytes, one '@' with a non-empty local
// part and a dotted domain, and holds none of the characters a display form would need; it is
// idempotent (canon(canon(x)) == canon(x)); and neither ASCII case nor surrounding whitespace
// changes the result.
func FuzzNormalizeEmail(f *testing.F) {
	for _, seed := range []string{
		"Ana@School.EXAMPLE", "  bob@example.org\n", "a@b.c", "a@b", "@b.c", "a@.b.c", "a@b.c.",
		"a b@c.d", `"a b"@c.d`, "Ana <ana@example.org>", "a@b@c.d", "a@[127.0.0.1]", "a(comment)@b.c",
		"a.@b.c", ".a@b.c", "a..b@c.d", "ä@example.org", "A@EXAMPLE.ORG\u00a0", "İ@example.org",
		"\u212a@example.org", "a@b.c\x00", "\xff@b.c", strings.Repeat("a", 250) + "@b.co", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		email, err := normalizeEmail(raw)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Code != "INVALID_ARGUMENT" || ae.Message == "" || email != "" {
				t.Fatalf("refusal of %q is not an INVALID_ARGUMENT: %#v", raw, err)
			}
		} else {
			if email != strings.ToLower(strings.TrimSpace(raw)) {
				t.Fatalf("%q canonicalised to %q", raw, email)
			}
			local, domain, _ := strings.Cut(email, "@")
			if len(email) > 254 || strings.Count(email, "@") != 1 || local == "" || !strings.Contains(domain, ".") ||
				strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.ContainsAny(email, " \t\r\n<>\"(),;:[]\\") {
				t.Fatalf("%q accepted as %q", raw, email)
			}
			again, err := normalizeEmail(email)
			if err != nil || again != email {
				t.Fatalf("not idempotent: %q -> %q -> %q, %v", raw, email, again, err)
			}
		}
		if isASCII(raw) {
			upper, uerr := normalizeEmail(" " + strings.ToUpper(raw) + "\t")
			if upper != email || (uerr == nil) != (err == nil) {
				t.Fatalf("%q gives %q, %v; upper-cased and padded, %q, %v", raw, email, err, upper, uerr)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
