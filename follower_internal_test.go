package slipstream

import "testing"

func TestMovesCursor(t *testing.T) {
	ten, _ := VersionFromBytes(make([]byte, 10))
	one, _ := VersionFromBytes([]byte{0})
	cases := []struct {
		name string
		v    Version
		want bool
	}{
		{"unknown", Version{}, false},
		{"revision 0", VersionFromUint64(0), false},
		{"revision 1", VersionFromUint64(1), true},
		{"revision 1<<56", VersionFromUint64(1 << 56), true},
		{"max revision", VersionFromUint64(^uint64(0)), true},
		{"10-byte token", ten, true},
		{"1-byte token", one, true},
	}
	for _, c := range cases {
		if got := movesCursor(c.v); got != c.want {
			t.Errorf("movesCursor(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}
