// Package embedding turns texts into vectors for Ripple's message search.
//
// A Provider embeds a batch of texts as documents (messages, stored in pgvector) or as queries
// (compared against them by cosine distance). Its Model string, such as
// "cohere/embed-v4.0@1536", is stored with every embedding row: vectors are only comparable with
// vectors of the same Model, so changing provider, model or dimensions means re-embedding.
//
// New builds one of three providers from a Config (ConfigFromEnv reads one from the
// environment):
//
//   - cohere: Cohere's v2 embed API through github.com/cohere-ai/cohere-go/v2, model embed-v4.0
//     by default, float embeddings with output_dimension 1536, input_type search_document or
//     search_query according to the InputType. At most 96 texts go in one request; Embed splits
//     larger inputs. The SDK's own retries are turned off: retrying is the caller's job.
//
//   - openai: any OpenAI-compatible POST {BaseURL}/v1/embeddings endpoint (OpenAI itself,
//     Ollama, text-embeddings-inference, vLLM), with plain net/http and encoding/json. Results
//     are put back in input order by their index, and a vector whose length differs from the
//     configured Dimensions is an ErrPermanent error. The API has no query/document distinction.
//
//   - local (the default): computed in process, with no network, no model files and no state,
//     so development and tests work offline. It is deterministic, fast (a few microseconds for a
//     chat message) and gives the same vector for a document and a query.
//
// # What the local provider is, and is not
//
// The local provider is lexical similarity, not a language model. Each text is lower-cased,
// stripped of accents and split into words (runs of Unicode letters and digits); a tiny English
// suffix stripper maps "tests", "tested" and "testing" to one stem. The features are word
// unigrams, word bigrams, and the character 3- and 4-grams of each word with boundary markers
// ("<maths>" gives "<ma", "mat", ..., "hs>"); common English stop words are kept only as a faint
// unigram. Every feature is hashed with FNV-1a into one of 1536 buckets, with a sign taken from
// the hash (signed feature hashing), weighted sublinearly (1+ln n for n occurrences), and the
// vector is L2-normalised so cosine similarity is a dot product.
//
// So two texts are close when they share words, word stems, word pairs or pieces of words:
// "when is the math exam" finds "maths test on Friday" through "math", and a misspelling like
// "footbal" still finds "football" through shared character n-grams. It knows nothing beyond
// that: no synonyms ("exam" and "test" are unrelated to it), no paraphrase without shared words,
// no word order beyond adjacent pairs, no negation, no cross-language matching, and English
// stemming only. Scripts written without spaces (Chinese, Japanese) become long "words" matched
// only through their character n-grams. Hash collisions add a little noise between unrelated
// features. Use cohere or an openai-compatible model where meaning matters.
//
// # Errors
//
// Embed's errors tell a job queue what to do: *RateLimitedError (HTTP 429, with the Retry-After
// delay when given) means snooze and retry; an error wrapping ErrPermanent (blank text, invalid
// input type, bad key, unknown model, wrong dimensions, any other 4xx) means give up; any other
// error (5xx, network failures, timeouts, malformed answers) is transient and worth retrying.
package embedding
