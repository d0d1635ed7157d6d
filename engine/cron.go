package engine

import (
	"errors"
	"fmt"
	"sort"

	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"
)

// cronParser reads the cron expressions of periodic functions: five fields (minute hour
// day-of-month month day-of-week), or six with seconds first, or a descriptor (@hourly,
// @every 90s), optionally prefixed with CRON_TZ=<zone>. Without a zone they are in the
// server's local time.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// schedule is the River schedule of a periodic function: exactly one of Interval and Cron.
func (p *PeriodicFunction) schedule() (river.PeriodicSchedule, error) {
	switch {
	case p.Interval != 0 && p.Cron != "":
		return nil, fmt.Errorf("engine: periodic function %s has both an Interval and a Cron schedule", p.Path)
	case p.Cron != "":
		s, err := cronParser.Parse(p.Cron)
		if err != nil {
			return nil, fmt.Errorf("engine: periodic function %s: cron schedule %q: %w", p.Path, p.Cron, err)
		}
		return s, nil
	case p.Interval > 0:
		return river.PeriodicInterval(p.Interval), nil
	}
	return nil, errors.New("engine: periodic function " + p.Path + " needs a positive Interval or a Cron schedule")
}

// scheduleText is the schedule as people write it: the cron expression, or an interval as
// cron's "@every" descriptor.
func (p *PeriodicFunction) scheduleText() string {
	if p.Cron != "" {
		return p.Cron
	}
	return "@every " + p.Interval.String()
}

// PeriodicInfo describes one periodic function registered with AddPeriodic (for `ripple
// functions` and admin tooling).
type PeriodicInfo struct {
	Path string
	// Schedule is the cron expression, or "@every <interval>" for a fixed interval.
	Schedule   string
	RunOnStart bool
}

// Periodic lists the periodic functions registered with AddPeriodic, sorted by path. (Those
// given in Config.PeriodicFunctions belong to one engine and are not listed.)
func (r *Registry) Periodic() []PeriodicInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]PeriodicInfo, 0, len(r.periodic))
	for _, p := range r.periodic {
		out = append(out, PeriodicInfo{Path: p.Path, Schedule: p.scheduleText(), RunOnStart: p.RunOnStart})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}
