package slipstream

// Attribute keys used in log records, so handlers and log queries can rely on
// them.
const (
	LogKeyComponent = "component"
	LogKeyCursor    = "cursor"
	LogKeyScope     = "scope"
	LogKeyUpdates   = "updates"
	LogKeyApplied   = "applied"
	LogKeyKeys      = "keys"
	LogKeyStreak    = "streak"
	LogKeyDir       = "dir"
)
