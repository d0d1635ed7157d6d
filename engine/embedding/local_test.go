package embedding

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func newTestLocal(t testing.TB) Provider {
	t.Helper()
	p, err := New(Config{})
	require.NoError(t, err)
	return p
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func l2(v []float32) float64 { return math.Sqrt(dot(v, v)) }

func TestLocalIdentity(t *testing.T) {
	t.Parallel()
	p := newTestLocal(t)
	require.Equal(t, "local/ngram-v1@1536", p.Model())
	require.Equal(t, 1536, p.Dimensions())
	require.Positive(t, p.MaxBatch())

	small, err := New(Config{Provider: "local", Dimensions: 256})
	require.NoError(t, err)
	require.Equal(t, "local/ngram-v1@256", small.Model())
	vecs, err := small.Embed(context.Background(), []string{"hello there"}, InputDocument)
	require.NoError(t, err)
	require.Len(t, vecs[0], 256)
}

func TestLocalDeterministicAndNormalised(t *testing.T) {
	t.Parallel()
	p := newTestLocal(t)
	ctx := context.Background()
	texts := []string{
		"Reminder: the maths test is on Friday!",
		"x",
		"👍",
		"Ça va? Très bien, merci — à demain.",
		"数学の試験はいつですか",
		strings.Repeat("long message with many many words ", 2000),
		"don't forget the 3 o'clock meeting",
	}
	a, err := p.Embed(ctx, texts, InputDocument)
	require.NoError(t, err)
	b, err := p.Embed(ctx, texts, InputQuery)
	require.NoError(t, err)
	require.Equal(t, a, b, "document and query vectors must match")

	// One at a time and with a fresh provider: the same bits.
	q, err := New(Config{Provider: "local"})
	require.NoError(t, err)
	for i, text := range texts {
		one, err := q.Embed(ctx, []string{text}, InputDocument)
		require.NoError(t, err)
		require.Equal(t, a[i], one[0], "text %d", i)
	}

	for i, v := range a {
		require.Len(t, v, 1536)
		require.InDelta(t, 1.0, l2(v), 1e-5, "text %d", i)
		for _, x := range v {
			require.False(t, math.IsNaN(float64(x)) || math.IsInf(float64(x), 0))
		}
	}
	// Different texts give different vectors.
	require.Less(t, dot(a[0], a[1]), 0.5)
}

func TestLocalNormalisation(t *testing.T) {
	t.Parallel()
	p := newTestLocal(t)
	vecs, err := p.Embed(context.Background(), []string{
		"Café RÉSUMÉ naïve",
		"cafe resume naive",
		"Don't",
		"dont",
		"don’t",
	}, InputDocument)
	require.NoError(t, err)
	require.InDelta(t, 1.0, dot(vecs[0], vecs[1]), 1e-6, "case and accents are folded")
	require.InDelta(t, 1.0, dot(vecs[2], vecs[3]), 1e-6, "apostrophes inside words are dropped")
	require.InDelta(t, 1.0, dot(vecs[2], vecs[4]), 1e-6, "typographic apostrophes too")
}

func TestStem(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"tests": "test", "tested": "test", "testing": "test", "test": "test",
		"maths": "math", "math": "math",
		"studies": "study", "studied": "study", "study": "study",
		"planned": "plan", "planning": "plan", "plans": "plan",
		"making": "mak", "make": "mak", "makes": "mak",
		"classes": "class", "class": "class", "watches": "watch",
		"falling": "fall", "missed": "miss",
		"need": "need", "needed": "need", "speed": "speed", "thing": "thing", "string": "string",
		"bus": "bus", "this": "this", "is": "is", "café": "café", "2024": "2024",
	} {
		require.Equal(t, want, stem(in), in)
	}
}

func TestLocalBlankAndInvalidInput(t *testing.T) {
	t.Parallel()
	p := newTestLocal(t)
	ctx := context.Background()
	for _, text := range []string{"", "   ", "\n\t"} {
		_, err := p.Embed(ctx, []string{"fine", text}, InputDocument)
		require.ErrorIs(t, err, ErrPermanent, "%q", text)
		require.ErrorContains(t, err, "text 1 is blank")
	}
	_, err := p.Embed(ctx, []string{"fine"}, InputType(7))
	require.ErrorIs(t, err, ErrPermanent)

	vecs, err := p.Embed(ctx, nil, InputDocument)
	require.NoError(t, err)
	require.Empty(t, vecs)

	// Punctuation and emoji alone still give a defined vector.
	vecs, err = p.Embed(ctx, []string{"?!", "🎉🎉"}, InputDocument)
	require.NoError(t, err)
	require.InDelta(t, 1.0, l2(vecs[0]), 1e-5)
	require.InDelta(t, 1.0, l2(vecs[1]), 1e-5)
}

func TestLocalCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newTestLocal(t).Embed(ctx, []string{"hello"}, InputDocument)
	require.ErrorIs(t, err, context.Canceled)
}

// chatCorpus is a school chat's worth of short, varied messages.
var chatCorpus = []string{
	"Reminder: the maths test is on Friday, revise chapters 3 and 4",           // 0
	"Can we move football practice to Friday afternoon?",                       // 1
	"When is the party at Sam's house?",                                        // 2
	"What time does the bus leave tomorrow morning?",                           // 3
	"I finished my history essay last night",                                   // 4
	"Can you send me the homework for science class?",                          // 5
	"Mum says dinner is at seven",                                              // 6
	"Did anyone see my blue jacket in the gym?",                                // 7
	"The library closes early on Wednesdays",                                   // 8
	"Who is bringing snacks for the field trip?",                               // 9
	"lol that video was hilarious 😂",                                           // 10
	"My phone battery is about to die",                                         // 11
	"Is the swimming pool open this weekend?",                                  // 12
	"We need two more players for the basketball team",                         // 13
	"The art project is due next Tuesday",                                      // 14
	"Happy birthday!! 🎂 have an amazing day",                                   // 15
	"Is it going to rain during the school trip?",                              // 16
	"Can I borrow your calculator for chemistry?",                              // 17
	"The spelling quiz got cancelled",                                          // 18
	"Let's meet at the cafeteria after lunch",                                  // 19
	"I can't find the password for the school wifi",                            // 20
	"Our English teacher is off sick today",                                    // 21
	"Band rehearsal moved to the music room",                                   // 22
	"Does anyone have notes from Monday's geography lesson?",                   // 23
	"Parents evening is on Thursday at 6pm",                                    // 24
	"I'm so tired, I stayed up gaming all night",                               // 25
	"Who won the chess tournament?",                                            // 26
	"Don't forget your PE kit tomorrow",                                        // 27
	"The new Spider-Man film comes out next week",                              // 28
	"Can someone explain question 5 from the physics worksheet?",               // 29
	"what is the answer to the riddle",                                         // 30
	"when is the next holiday",                                                 // 31
	"Thanks for helping me with the reading assignment, you are the best ever", // 32
}

func rank(t *testing.T, p Provider, query string) []int {
	t.Helper()
	ctx := context.Background()
	docs, err := p.Embed(ctx, chatCorpus, InputDocument)
	require.NoError(t, err)
	qv, err := p.Embed(ctx, []string{query}, InputQuery)
	require.NoError(t, err)
	order := make([]int, len(docs))
	scores := make([]float64, len(docs))
	for i := range docs {
		order[i] = i
		scores[i] = dot(qv[0], docs[i])
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
	if testing.Verbose() {
		var b strings.Builder
		for _, i := range order[:4] {
			fmt.Fprintf(&b, "  %.3f %q\n", scores[i], chatCorpus[i])
		}
		t.Logf("%q:\n%s", query, b.String())
	}
	return order
}

func TestLocalRelevance(t *testing.T) {
	t.Parallel()
	p := newTestLocal(t)
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"when is the math exam", 0},
		{"maths test friday", 0},
		{"football practice", 1},
		{"footbal", 1}, // a typo still shares character n-grams
		{"bus times", 3},
		{"science homework", 5},
		{"lost jacket", 7},
		{"library opening hours", 8},
		{"snacks for the trip", 9},
		{"basketball players", 13},
		{"rehearsals for the band", 22},
		{"geography notes", 23},
		{"physics question", 29},
		{"calculator", 17},
		{"wifi password", 20},
		{"birthday", 15},
		{"chess", 26},
		{"PE kit", 27},
		{"parents' evening", 24},
		{"café lunch", 19}, // accents fold: café → cafe, a prefix of cafeteria's n-grams
	} {
		order := rank(t, p, tc.query)
		require.Equal(t, chatCorpus[tc.want], chatCorpus[order[0]], "query %q", tc.query)
	}
}

func TestLocalParaphraseAboveUnrelated(t *testing.T) {
	t.Parallel()
	p := newTestLocal(t)
	// Paraphrases that share some words with their message must rank it above every message they
	// share nothing with.
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"could you please send me the science homework", 5},
		{"has the bus left yet this morning", 3},
		{"I have finished writing the history essays", 4},
		{"which day is the art project due", 14},
		{"the swimming pool is open on the weekend, right?", 12},
	} {
		order := rank(t, p, tc.query)
		require.Equal(t, tc.want, order[0], "query %q ranked %q first", tc.query, chatCorpus[order[0]])
	}
}

func BenchmarkLocalEmbed(b *testing.B) {
	p := newTestLocal(b)
	ctx := context.Background()
	b.Run("message", func(b *testing.B) {
		texts := []string{"Reminder: the maths test is on Friday, revise chapters 3 and 4"}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Embed(ctx, texts, InputDocument); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch96", func(b *testing.B) {
		texts := make([]string, 96)
		for i := range texts {
			texts[i] = chatCorpus[i%len(chatCorpus)]
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Embed(ctx, texts, InputDocument); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("long2KB", func(b *testing.B) {
		texts := []string{strings.Repeat("Did anyone see my blue jacket in the gym? ", 50)}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Embed(ctx, texts, InputDocument); err != nil {
				b.Fatal(err)
			}
		}
	})
}
