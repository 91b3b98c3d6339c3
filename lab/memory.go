package lab

import (
	"context"
	"fmt"
	"time"

	"github.com/smtplab/smtplab/lab/report"
	"github.com/smtplab/smtplab/lab/stack"
	"github.com/smtplab/smtplab/lab/topology"
)

// memoryWatch samples every role's container's resident memory
// (stack.Container.Memory) as a run goes: before the first delivery, each
// time another tenth of the messages is in the Maildir, and at the end
// (report.RoleMemory). Eleven or twelve samples a run, whatever its size:
// each asks the engine once per container. A nil watch measures nothing
// (docker compose: its runner has no engine to ask).
type memoryWatch struct {
	cs    []*stack.Container // in topology order
	step  int                // a tenth of the messages, at least 1
	next  int                // the delivered count of the next sample
	out   []report.RoleMemory
	taken bool
}

func newMemoryWatch(cs map[topology.Role]*stack.Container, replicas map[topology.Role][]*stack.Container, total int) *memoryWatch {
	m := &memoryWatch{step: max(1, total/10)}
	roles := append(topology.Roles(), topology.Final)
	for _, r := range roles {
		if hosts := replicas[r]; len(hosts) > 1 {
			// Several sending hosts: each its own row, named as its
			// connections are (senders.go).
			for k, c := range hosts {
				m.cs = append(m.cs, c)
				m.out = append(m.out, report.RoleMemory{Role: fmt.Sprintf("%s-%d", r, k+1)})
			}
			continue
		}
		if c := cs[r]; c != nil {
			m.cs = append(m.cs, c)
			m.out = append(m.out, report.RoleMemory{Role: string(r)})
		}
	}
	return m
}

// at samples when delivered has reached the next tenth (or nothing was
// sampled yet).
func (m *memoryWatch) at(ctx context.Context, delivered int) {
	if m == nil || (m.taken && delivered < m.next) {
		return
	}
	m.sample(ctx, delivered)
	m.next = (delivered/m.step + 1) * m.step
}

// sample asks every container's memory now. A container that does not
// answer (killed by a fault) is left out of this sample.
func (m *memoryWatch) sample(ctx context.Context, delivered int) {
	if m == nil {
		return
	}
	m.taken = true
	for i, c := range m.cs {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		b, err := c.Memory(sctx)
		cancel()
		if err != nil {
			continue
		}
		o := &m.out[i]
		o.Samples = append(o.Samples, report.MemorySample{Delivered: delivered, Bytes: b})
		o.Peak = max(o.Peak, b)
	}
}

// result is what was sampled, for the run's result.
func (m *memoryWatch) result() []report.RoleMemory {
	if m == nil {
		return nil
	}
	return m.out
}
