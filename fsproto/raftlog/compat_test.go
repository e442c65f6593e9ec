package raftlog_test

import (
	"github.com/weftfs/weft/fsproto/raftgroup"
	"github.com/weftfs/weft/fsproto/raftlog"
)

// The Raft runner takes a raftgroup.LogStore; Storage must stay one.
var _ raftgroup.LogStore = (*raftlog.Storage)(nil)
