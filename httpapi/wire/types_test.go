package wire

import (
	"encoding/json"
	"testing"
)

// A decimal keeps its digits both ways: rendered as the stored text, read
// back as the sent text, never through float64.
func TestDecimalRoundTrip(t *testing.T) {
	b, err := json.Marshal(Service{ID: 1, Service: "s", ReleaseRate: "0.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":1,"service":"s","pattern":"","release_rate":0.1,"allow_new_users":false,"spread":0}`
	if string(b) != want {
		t.Fatalf("rendered %s, want %s", b, want)
	}
	var s Service
	if err := json.Unmarshal([]byte(`{"release_rate":0.10000000000000000001}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.ReleaseRate != "0.10000000000000000001" {
		t.Fatalf("decoded %q", s.ReleaseRate)
	}
}

func TestDecimalRefusesWhatIsNotADecimal(t *testing.T) {
	for _, bad := range []Decimal{"", "1e3", "abc", "1.2.3", "--1"} {
		if _, err := json.Marshal(bad); err == nil {
			t.Errorf("%q rendered", bad)
		}
	}
	var d Decimal
	if err := json.Unmarshal([]byte(`"x"`), &d); err == nil {
		t.Errorf(`"x" decoded as %q`, d)
	}
}

// An empty optional release rate is not sent at all.
func TestEmptyReleaseRateIsOmitted(t *testing.T) {
	b, err := json.Marshal(PutServiceRequest{Pattern: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"pattern":"p"}` {
		t.Fatalf("body %s", b)
	}
}
