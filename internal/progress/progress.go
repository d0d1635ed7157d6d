// Package progress reports how far a long command has got: a bar with rate and ETA when the
// output is a terminal (github.com/schollz/progressbar, so redrawing, throttling and terminal
// width are a maintained library's job), and plain lines every few seconds otherwise, so a log
// file or CI output gets readable lines rather than carriage returns.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// PlainEvery is how often a plain (non-terminal) report prints a line while work goes on.
const PlainEvery = 5 * time.Second

// Unit says what a report counts.
type Unit string

const (
	Rows     Unit = "rows"
	Messages Unit = "messages"
	Bytes    Unit = "bytes"
)

// Bar is one counted piece of work. A nil *Bar, or one made for a nil writer, reports nothing,
// so callers need no "quiet" branches. It is safe for concurrent use.
type Bar struct {
	bar *progressbar.ProgressBar // on a terminal

	// plain lines
	mu        sync.Mutex
	w         io.Writer
	what      string
	unit      Unit
	total     int64
	done      int64
	start     time.Time
	lastPrint time.Time
	finished  bool
}

// New starts reporting what (a phrase such as "exporting messages") towards total units on w.
// total < 0 means unknown: no percentage or ETA.
func New(w io.Writer, what string, total int64, unit Unit) *Bar {
	if w == nil {
		return nil
	}
	// Nothing to count draws no bar: the plain "done" line says it.
	if f, ok := w.(*os.File); ok && total != 0 && term.IsTerminal(int(f.Fd())) {
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		}
		if unit == Bytes {
			opts = append(opts, progressbar.OptionShowBytes(true))
		} else {
			opts = append(opts, progressbar.OptionSetItsString(string(unit)))
		}
		return &Bar{bar: progressbar.NewOptions64(total, opts...)}
	}
	now := time.Now()
	return &Bar{w: w, what: what, unit: unit, total: total, start: now, lastPrint: now}
}

// Add counts n more units done.
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	if b.bar != nil {
		_ = b.bar.Add64(n)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.done += n
	if now := time.Now(); now.Sub(b.lastPrint) >= PlainEvery {
		b.lastPrint = now
		fmt.Fprintln(b.w, b.line(now))
	}
}

// Finish ends the report with a last line (the bar full, or "done" with the elapsed time).
// Calling it again does nothing.
func (b *Bar) Finish() {
	if b == nil {
		return
	}
	if b.bar != nil {
		if !b.bar.IsFinished() {
			_ = b.bar.Finish()
		}
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finished {
		return
	}
	b.finished = true
	elapsed := time.Since(b.start).Round(time.Millisecond)
	fmt.Fprintf(b.w, "%s: %s done in %s\n", b.what, b.amount(b.done), elapsed)
}

// Stop ends the report where it is, for work that failed or was interrupted; after Finish it
// does nothing, so it can be deferred.
func (b *Bar) Stop() {
	if b == nil {
		return
	}
	if b.bar != nil {
		if !b.bar.IsFinished() {
			_ = b.bar.Exit()
		}
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finished = true
}

// line is a plain report: "exporting messages: 1200/5000 rows (24%), 240 rows/s, ETA 16s".
func (b *Bar) line(now time.Time) string {
	rate := float64(b.done) / now.Sub(b.start).Seconds()
	s := b.what + ": " + b.amount(b.done)
	if b.total >= 0 {
		s = b.what + ": " + b.number(b.done) + "/" + b.amount(b.total)
	}
	if b.total > 0 {
		s += fmt.Sprintf(" (%d%%)", b.done*100/b.total)
	}
	s += ", " + b.amount(int64(rate)) + "/s"
	if b.total >= 0 && rate > 0 && b.done < b.total {
		eta := time.Duration(float64(b.total-b.done) / rate * float64(time.Second))
		s += ", ETA " + eta.Round(time.Second).String()
	}
	return s
}

// number prints n bare: bytes in MiB once there are many.
func (b *Bar) number(n int64) string {
	if b.unit == Bytes && n >= 1<<20 {
		return fmt.Sprintf("%.1f Mi", float64(n)/(1<<20))
	}
	return fmt.Sprint(n)
}

// amount prints n with its unit: "1200 rows", "3.2 MiB".
func (b *Bar) amount(n int64) string {
	if b.unit == Bytes && n >= 1<<20 {
		return b.number(n) + "B"
	}
	return b.number(n) + " " + string(b.unit)
}
