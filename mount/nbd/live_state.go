package nbd

// LiveStateSuffix names the state file of a live restore: PATH + suffix
// beside the target PATH.
const LiveStateSuffix = ".cairn-live"

// liveKind saves a live restore's bitmap of hydrated granules with one
// extra header field, the count of write requests so far ("CAIRNLIV",
// version 1; see granuleKind). Its granules are filled by the background
// copier while clients write.
var liveKind = granuleKind{
	magic:     "CAIRNLIV",
	version:   1,
	extra:     1,
	filled:    true,
	locks:     256,
	data:      "target",
	synced:    "live restore target",
	rangeName: "live",
	state:     "live restore state",
	kind:      "a live restore state file",
	invalid:   ErrLiveState,
}
