package embedding

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// localMaxBatch is only a hint for callers sizing batches; the local provider has no limit.
const localMaxBatch = 256

// localMaxBytes bounds the text the local provider reads: longer texts are embedded from their
// first localMaxBytes bytes. Chat messages are far shorter.
const localMaxBytes = 16 << 10

// Feature weights before sublinear term weighting. A content word contributes its unigram
// (weight 1) and its character n-grams (together about as much again, split evenly over them,
// so long words do not dominate); stop words contribute a faint unigram only.
const (
	wContentWord   = 1.0
	wStopWord      = 0.15
	wBigram        = 0.8 // two content words
	wBigramStop    = 0.4 // a stop word and a content word; two stop words give no bigram
	wCharGramTotal = 0.9
)

// Feature namespaces: the first byte hashed, so a unigram and a character n-gram spelled the
// same never share a bucket on purpose.
const (
	nsWord     = 'w'
	nsBigram   = 'b'
	nsCharGram = 'c'
)

type localProvider struct {
	dims int
}

func newLocal(dims int) *localProvider { return &localProvider{dims: dims} }

func (p *localProvider) Model() string   { return modelID(ProviderLocal, DefaultLocalModel, p.dims) }
func (p *localProvider) Dimensions() int { return p.dims }
func (p *localProvider) MaxBatch() int   { return localMaxBatch }

// Embed is deterministic and ignores input: documents and queries get the same vector.
func (p *localProvider) Embed(ctx context.Context, texts []string, input InputType) ([][]float32, error) {
	if err := checkInput(texts, input); err != nil {
		return nil, err
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		v := make([]float32, p.dims)
		if !s.embed(t, v) {
			// Unreachable for non-blank text (every non-space rune yields a feature), kept so a
			// zero vector can never reach a cosine index.
			return nil, fmt.Errorf("%w: text %d has no features", ErrPermanent, i)
		}
		out[i] = v
	}
	return out, nil
}

type feature struct {
	hash   uint64
	weight float32
}

type token struct {
	raw  string // lower-cased, accent-stripped, apostrophes removed
	stem string
	stop bool
	// symbol marks a fallback token made of one non-letter, non-digit rune (an emoji-only
	// message): it gets a unigram and nothing else.
	symbol bool
}

// scratch holds per-call buffers, reused through scratchPool.
type scratch struct {
	features []feature
	tokens   []token
	offsets  []int
	marked   []byte
	acc      []float64
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// embed writes the L2-normalised feature vector of text into v (len(v) buckets) and reports
// whether text had any feature.
func (s *scratch) embed(text string, v []float32) bool {
	s.tokenize(normalize(text))
	s.features = s.features[:0]
	for i := range s.tokens {
		t := &s.tokens[i]
		if t.stop {
			s.add(featureHash(nsWord, t.stem, ""), wStopWord)
		} else {
			s.add(featureHash(nsWord, t.stem, ""), wContentWord)
		}
		if !t.stop && !t.symbol {
			s.charGrams(t.raw)
		}
		if i > 0 {
			prev := &s.tokens[i-1]
			switch {
			case prev.symbol || t.symbol, prev.stop && t.stop:
			case prev.stop || t.stop:
				s.add(featureHash(nsBigram, prev.stem, t.stem), wBigramStop)
			default:
				s.add(featureHash(nsBigram, prev.stem, t.stem), wBigram)
			}
		}
	}
	if len(s.features) == 0 {
		return false
	}

	// Merge repeated features with sublinear term frequency: n occurrences of a feature count
	// 1+ln(n) times its mean weight.
	slices.SortFunc(s.features, func(a, b feature) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return 0
	})
	if cap(s.acc) < len(v) {
		s.acc = make([]float64, len(v))
	}
	acc := s.acc[:len(v)]
	clear(acc)
	dims := uint64(len(v))
	for i := 0; i < len(s.features); {
		h := s.features[i].hash
		var sum float64
		n := 0
		for ; i < len(s.features) && s.features[i].hash == h; i++ {
			sum += float64(s.features[i].weight)
			n++
		}
		w := sum / float64(n) * (1 + math.Log(float64(n)))
		if h>>63 == 1 {
			w = -w
		}
		acc[(h&0xffffffff)%dims] += w
	}
	var norm float64
	for _, x := range acc {
		norm += x * x
	}
	if norm == 0 {
		return false
	}
	inv := 1 / math.Sqrt(norm)
	for i, x := range acc {
		v[i] = float32(x * inv)
	}
	return true
}

func (s *scratch) add(h uint64, w float32) {
	s.features = append(s.features, feature{hash: h, weight: w})
}

// charGrams adds the character 3- and 4-grams of "<word>", their weights summing to
// wCharGramTotal. Words shorter than two runes and all-digit words get none.
func (s *scratch) charGrams(word string) {
	n := utf8.RuneCountInString(word)
	if n < 2 || isDigits(word) {
		return
	}
	s.marked = append(append(append(s.marked[:0], '<'), word...), '>')
	s.offsets = s.offsets[:0]
	for i := range string(s.marked) {
		s.offsets = append(s.offsets, i)
	}
	s.offsets = append(s.offsets, len(s.marked))
	runes := len(s.offsets) - 1 // n + 2
	grams := 0
	for _, g := range [...]int{3, 4} {
		if runes >= g {
			grams += runes - g + 1
		}
	}
	w := float32(wCharGramTotal / math.Sqrt(float64(grams)))
	for _, g := range [...]int{3, 4} {
		for i := 0; i+g <= runes; i++ {
			s.add(featureHashBytes(nsCharGram, s.marked[s.offsets[i]:s.offsets[i+g]]), w)
		}
	}
}

// normalize lower-cases text and strips accents (NFD, then drops combining marks). Text past
// localMaxBytes is ignored.
func normalize(text string) string {
	if len(text) > localMaxBytes {
		cut := localMaxBytes
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	ascii := true
	for i := 0; i < len(text); i++ {
		if text[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(text)
	}
	var b strings.Builder
	b.Grow(len(text))
	for _, r := range norm.NFD.String(text) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func isApostrophe(r rune) bool { return r == '\'' || r == '\u2019' || r == '\u02bc' }

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// tokenize splits normalised text into words: maximal runs of Unicode letters and digits, an
// apostrophe between two word runes being dropped ("don't" → "dont"). Text without any word
// falls back to one token per non-space rune, so an emoji-only message still has features.
func (s *scratch) tokenize(text string) {
	s.tokens = s.tokens[:0]
	var word []byte
	prevWord := false
	for i, r := range text {
		switch {
		case isWordRune(r):
			word = utf8.AppendRune(word, r)
			prevWord = true
			continue
		case isApostrophe(r) && prevWord:
			if next, _ := utf8.DecodeRuneInString(text[i+utf8.RuneLen(r):]); isWordRune(next) {
				continue // inside a word: drop it and keep going
			}
		}
		prevWord = false
		if len(word) > 0 {
			s.addWord(string(word))
			word = word[:0]
		}
	}
	if len(word) > 0 {
		s.addWord(string(word))
	}
	if len(s.tokens) > 0 {
		return
	}
	for _, r := range text {
		if !unicode.IsSpace(r) {
			sym := string(r)
			s.tokens = append(s.tokens, token{raw: sym, stem: sym, symbol: true})
		}
	}
}

func (s *scratch) addWord(w string) {
	_, stop := stopWords[w]
	s.tokens = append(s.tokens, token{raw: w, stem: stem(w), stop: stop})
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isASCIILower(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

func isVowel(c byte) bool { return strings.IndexByte("aeiouy", c) >= 0 }

func hasVowel(s string) bool { return strings.IndexAny(s, "aeiouy") >= 0 }

// stem is a deliberately tiny English suffix stripper for ASCII words of four or more letters:
// plurals ("tests", "classes", "studies"), then "-ing"/"-ed" (undoubling "planned" → "plan"),
// then a final "e" ("make", "making" → "mak"). It only has to map related forms onto the same
// string; the result need not be a word.
func stem(w string) string {
	if len(w) < 4 || !isASCIILower(w) {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && len(w) > 4:
		w = w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "sses"), strings.HasSuffix(w, "ches"), strings.HasSuffix(w, "shes"),
		strings.HasSuffix(w, "xes"), strings.HasSuffix(w, "zes"):
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") &&
		!strings.HasSuffix(w, "is"):
		w = w[:len(w)-1]
	}
	switch {
	case strings.HasSuffix(w, "ied") && len(w) > 4:
		w = w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "ing"):
		if base := w[:len(w)-3]; len(base) >= 3 && hasVowel(base) {
			w = undouble(base)
		}
	case strings.HasSuffix(w, "ed"):
		if base := w[:len(w)-2]; len(base) >= 3 && hasVowel(base) && base[len(base)-1] != 'e' {
			w = undouble(base)
		}
	}
	if len(w) >= 4 && w[len(w)-1] == 'e' && !isVowel(w[len(w)-2]) {
		w = w[:len(w)-1]
	}
	return w
}

// undouble drops one of a trailing doubled consonant ("plann" → "plan") except l, s and z
// ("fall", "miss", "buzz").
func undouble(w string) string {
	n := len(w)
	if n >= 2 && w[n-1] == w[n-2] && !isVowel(w[n-1]) && strings.IndexByte("lsz", w[n-1]) < 0 {
		return w[:n-1]
	}
	return w
}

// stopWords get a faint unigram and no character n-grams or stop-stop bigrams: they carry
// little meaning for search and would otherwise make every question resemble every other.
var stopWords = func() map[string]struct{} {
	words := strings.Fields(`
		a about after again all also am an and any are as at be because been before being but by
		can could did do does doing dont for from get got had has have having he her here hers him
		his how i if im in into is it its ive just let lets me my no nor not of off ok on once only
		or our ours out over please so some such than that thats the their them then there these
		they this those to too up us very was we were what whats when where which while who whom
		why will with would yes you your youre yours`)
	m := make(map[string]struct{}, len(words))
	for _, w := range words {
		m[w] = struct{}{}
	}
	return m
}()

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// featureHash is FNV-1a over ns, a, and (when b is not empty) a space and b, followed by a
// 64-bit finaliser so that every output bit depends on every input bit (FNV-1a alone leaves the
// low bits, which pick the bucket, weakly mixed). The low 32 bits pick the bucket and the top bit
// gives the sign.
func featureHash(ns byte, a, b string) uint64 {
	h := uint64(fnvOffset)
	h = (h ^ uint64(ns)) * fnvPrime
	for i := 0; i < len(a); i++ {
		h = (h ^ uint64(a[i])) * fnvPrime
	}
	if b != "" {
		h = (h ^ ' ') * fnvPrime
		for i := 0; i < len(b); i++ {
			h = (h ^ uint64(b[i])) * fnvPrime
		}
	}
	return mix64(h)
}

func featureHashBytes(ns byte, p []byte) uint64 {
	h := uint64(fnvOffset)
	h = (h ^ uint64(ns)) * fnvPrime
	for _, c := range p {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return mix64(h)
}

// mix64 is MurmurHash3's fmix64.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
