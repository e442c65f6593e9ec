package manager

import (
	"context"
	"fmt"
	"slices"

	"github.com/weftfs/weft/net"
)

// KindRemoveMember asks the managers' leader to take a member out of the
// group: the way to shrink it (the leader's repair only grows and heals
// it, see repairRound). Cluster key or a cluster admin key. On-wire.
const KindRemoveMember net.Kind = 315

// removeMemberRequest is the header body of KindRemoveMember:
//
//	+---------+----------+--------+
//	| version | reserved | member |
//	| u8 = 1  | [7] zero | u64    |
//	+---------+----------+--------+
//
// The answer is a reply without a map (the map's epoch, which the removal
// does not change) once the removal is applied on the leader, or an error:
// CodeUnavailable from a member that is not the leader, from a leader
// asked to remove itself (it hands the leadership over) and while too few
// voters are active (ask again, the next member first), CodeRejected when
// the leader refuses (the message says why).
type removeMemberRequest struct {
	Member uint64
}

func (r removeMemberRequest) append(b []byte) []byte { return appendIDRequest(b, r.Member) }

func decodeRemoveMemberRequest(b []byte) (removeMemberRequest, error) {
	id, err := decodeIDRequest(b, "remove-member request", "member")
	return removeMemberRequest{Member: id}, err
}

// serveRemoveMember answers KindRemoveMember. Only the leader acts, since
// its repair is what would add the member back: it refuses a member its
// own Peers still name (restart every member with --manager-peers
// without it first), a member the group does not have, and a removal
// after which the voters left would not have a majority of active ones.
// Asked to remove itself, it hands the leadership to the active voter
// furthest caught up and answers CodeUnavailable, so that the client asks
// again and reaches the new leader.
func (m *Manager) serveRemoveMember(ctx context.Context, req *net.Request, w *net.ResponseWriter) {
	r, err := decodeRemoveMemberRequest(req.Header)
	if err != nil {
		w.Error(CodeBadRequest, err.Error())
		return
	}
	if req.Peer.ReadOnly {
		w.Error(CodeReadOnly, fmt.Sprintf("manager %d: key %q is read-only; removing a member needs the cluster key or a cluster admin key", m.cfg.ID, req.Peer.KeyID))
		return
	}
	if _, err := authorize(m.cfg.Access, &req.Peer, KindRemoveMember, nil, nil, ""); err != nil {
		w.Error(CodeAccessDenied, fmt.Sprintf("manager %d: access denied: %v", m.cfg.ID, err))
		return
	}
	if why := m.down(); why != "" {
		w.Error(CodeUnavailable, why)
		return
	}
	g := m.g.Load()
	if lead := m.Leader(); lead != m.cfg.ID {
		w.Error(CodeUnavailable, fmt.Sprintf("manager %d: not the leader (leader %d)", m.cfg.ID, lead))
		return
	}
	sctx, cancel := context.WithTimeout(ctx, m.cfg.ProposeTimeout)
	defer cancel()
	st, err := g.Status(sctx)
	if err != nil {
		w.Error(CodeUnavailable, fmt.Sprintf("manager %d: status: %v", m.cfg.ID, err))
		return
	}
	if r.Member == m.cfg.ID && (slices.Contains(st.Voters, r.Member) || slices.Contains(st.Learners, r.Member)) {
		// The leader hands its leadership over, and the next leader,
		// asked again, judges the removal by its own peer list.
		to := transferTarget(m.cfg.ID, st.Voters, st.Active, st.Match)
		if to == 0 {
			// Retryable: a new leader knows no member active yet.
			w.Error(CodeUnavailable, fmt.Sprintf("manager %d (leader): it leads, and no other voter is active to take the leadership over", m.cfg.ID))
			return
		}
		if err := g.TransferLeadership(sctx, to); err != nil {
			w.Error(CodeUnavailable, fmt.Sprintf("manager %d: leadership transfer: %v", m.cfg.ID, err))
			return
		}
		w.Error(CodeUnavailable, fmt.Sprintf("manager %d: it leads; handing the leadership to member %d, which decides the removal when asked again", m.cfg.ID, to))
		return
	}
	if why, later := refuseRemoval(m.cfg.ID, r.Member, peerIDs(m.cfg.Peers), st.Voters, st.Learners, st.Active); why != "" {
		code := CodeRejected
		if later {
			// A leader learns which members are active from their
			// answers since it took over: a new one knows none yet.
			code = CodeUnavailable
		}
		w.Error(code, fmt.Sprintf("manager %d (leader): %s", m.cfg.ID, why))
		return
	}
	if err := g.RemoveMember(sctx, r.Member); err != nil {
		w.Error(CodeAmbiguous, fmt.Sprintf("manager %d: remove member %d: %v", m.cfg.ID, r.Member, err))
		return
	}
	m.log.Info("manager: member removed on request", "member", r.Member, "key", req.Peer.KeyID)
	w.Reply(reply{Epoch: m.sm.Map().Epoch}.append(nil), nil, nil)
}

// refuseRemoval says why the leader self may not remove member id from
// the group of voters and learners, given its own peer list and which
// members are active, and whether asking later may succeed (too few
// active voters); "" when it may.
func refuseRemoval(self, id uint64, peers, voters, learners []uint64, active map[uint64]bool) (why string, later bool) {
	switch {
	case !slices.Contains(voters, id) && !slices.Contains(learners, id):
		return fmt.Sprintf("member %d is not in the group (voters %v, learners %v)", id, voters, learners), false
	case id == self:
		return fmt.Sprintf("member %d leads the group; it hands the leadership over first", id), true
	case slices.Contains(peers, id):
		return fmt.Sprintf("member %d is in this leader's --manager-peers, so its repair would add it back; restart every member with --manager-peers without it first", id), false
	}
	if !slices.Contains(voters, id) {
		return "", false // a learner: the voters do not change
	}
	left, up := 0, 0
	for _, v := range voters {
		if v == id {
			continue
		}
		left++
		if v == self || active[v] {
			up++
		}
	}
	if up <= left/2 {
		return fmt.Sprintf("without member %d, %d of the %d voters left are active, not a majority; bring the others back first", id, up, left), true
	}
	return "", false
}

// transferTarget picks the voter other than self to hand the leadership
// to: an active one, the furthest caught up (raft transfers once the
// target's log matches). 0 when there is none.
func transferTarget(self uint64, voters []uint64, active map[uint64]bool, match map[uint64]uint64) uint64 {
	var best uint64
	for _, v := range voters {
		if v == self || !active[v] {
			continue
		}
		if best == 0 || match[v] > match[best] || match[v] == match[best] && v < best {
			best = v
		}
	}
	return best
}

// RemoveMember asks the managers' leader to take member id out of the
// group (see KindRemoveMember), trying the members until the leader
// answers. A refusal wraps the leader's reason.
func (c *Client) RemoveMember(ctx context.Context, id uint64) error {
	hdr := removeMemberRequest{Member: id}.append(nil)
	return c.runFrom(ctx, &c.mu.lead, fmt.Sprintf("remove member %d", id), replyAttempt(KindRemoveMember, hdr), clientApplyTimeout)
}
