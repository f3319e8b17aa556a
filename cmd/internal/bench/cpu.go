package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Why CPU per operation: on a machine where the load generator shares the
// cores with the members, throughput measures both together. The CPU time
// each side spends per operation says what the members cost on their own,
// and so what the throughput would be with the load generator elsewhere.

// CPUCost is the CPU time spent in the measured window, per operation
// (every measured operation, successful or not) and as cores kept busy on
// average.
type CPUCost struct {
	// Members: all members together; 0 when unknown (a cluster the run did
	// not spawn, or no /proc).
	MembersMicrosPerOp float64 `json:"members_us_per_op"`
	MembersCores       float64 `json:"members_cores"`
	// Client: this bench process (its load generator).
	ClientMicrosPerOp float64 `json:"client_us_per_op"`
	ClientCores       float64 `json:"client_cores"`
}

// cpuSample is the CPU time used so far by this process and, if known, the
// members.
type cpuSample struct {
	client, members time.Duration
	membersKnown    bool
}

func sampleCPU(membersCPU func() (time.Duration, error)) cpuSample {
	s := cpuSample{client: selfCPU()}
	if membersCPU != nil {
		if d, err := membersCPU(); err == nil {
			s.members, s.membersKnown = d, true
		}
	}
	return s
}

// cpuCost turns two samples around a window of ops operations into a cost.
func cpuCost(from, to cpuSample, ops int64, window time.Duration) *CPUCost {
	if ops <= 0 || window <= 0 {
		return nil
	}
	per := func(d time.Duration) (float64, float64) {
		return round2(float64(d.Microseconds()) / float64(ops)), round2(d.Seconds() / window.Seconds())
	}
	c := &CPUCost{}
	c.ClientMicrosPerOp, c.ClientCores = per(to.client - from.client)
	if from.membersKnown && to.membersKnown {
		c.MembersMicrosPerOp, c.MembersCores = per(to.members - from.members)
	}
	return c
}

// selfCPU is this process's user plus system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// processCPU is the user plus system time of process pid (all its
// threads), read from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	return parseProcStatCPU(string(b))
}

// parseProcStatCPU reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseProcStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat %.40q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("/proc stat: cpu time %q is not a count of ticks", s)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
