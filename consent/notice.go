package consent

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Notice is the versioned consent notice shown on the phone pages, in every
// language it has. Its hash (SHA-256 of its JSON) goes into the ledger with
// every grant, so what a shopper agreed to can be proven later. Changing any
// text must change Version: tokens and consents of an older version are
// refused or ended.
type Notice struct {
	Version  string                `json:"version"`
	Purposes []string              `json:"purposes"`
	Texts    map[string]NoticeText `json:"texts"` // by language tag: "en", "zh-CN"
	hash     string
}

// NoticeText is the notice in one language.
type NoticeText struct {
	LangName       string `json:"lang_name"`
	Title          string `json:"title"`
	Controller     string `json:"controller"`
	Purpose        string `json:"purpose"`
	Changes        string `json:"changes"`
	Duration       string `json:"duration"` // %s: the maximum duration
	Withdraw       string `json:"withdraw"`
	NoEffect       string `json:"no_effect"`
	Checkbox       string `json:"checkbox"`
	Yes            string `json:"yes"`
	No             string `json:"no"`
	Declined       string `json:"declined"`
	Stand          string `json:"stand"`
	Confirm        string `json:"confirm"`
	Bound          string `json:"bound"` // %s: the expiry time
	WithdrawButton string `json:"withdraw_button"`
	Withdrawn      string `json:"withdrawn"`
	Receipt        string `json:"receipt"`
	NoneInZone     string `json:"none_in_zone"`
	SeveralInZone  string `json:"several_in_zone"`
	Ended          string `json:"ended"`
	Retry          string `json:"retry"`
	AgreeFirst     string `json:"agree_first"`
}

//go:embed notice.json
var defaultNotice []byte

// DefaultNotice is the notice veil ships with (en and zh-CN).
func DefaultNotice() Notice {
	n, err := ParseNotice(defaultNotice)
	if err != nil {
		panic("consent: embedded notice: " + err.Error())
	}
	return n
}

// ParseNotice reads a notice; every language must have every text.
func ParseNotice(data []byte) (Notice, error) {
	var n Notice
	if err := json.Unmarshal(data, &n); err != nil {
		return Notice{}, fmt.Errorf("notice: %w", err)
	}
	if n.Version == "" || len(n.Purposes) == 0 || n.Texts["en"].Title == "" {
		return Notice{}, fmt.Errorf("notice: needs a version, purposes and at least English texts")
	}
	for lang, t := range n.Texts {
		b, _ := json.Marshal(t)
		var m map[string]string
		_ = json.Unmarshal(b, &m)
		for k, v := range m {
			if strings.TrimSpace(v) == "" {
				return Notice{}, fmt.Errorf("notice %s: %s text %q is empty", n.Version, lang, k)
			}
		}
	}
	canon, _ := json.Marshal(n)
	sum := sha256.Sum256(canon)
	n.hash = hex.EncodeToString(sum[:])
	return n, nil
}

// Hash is the SHA-256 of the notice's canonical JSON, hex.
func (n Notice) Hash() string { return n.hash }

// Langs are the notice's languages, English first.
func (n Notice) Langs() []string {
	out := []string{"en"}
	for l := range n.Texts {
		if l != "en" {
			out = append(out, l)
		}
	}
	return out
}

// Pick chooses the language for an Accept-Language header (or an explicit
// choice): the first listed language the notice has, matching "zh", "zh-CN",
// "zh-Hans-CN" to zh-CN; English otherwise.
func (n Notice) Pick(accept string) string {
	for _, part := range strings.Split(accept, ",") {
		tag := strings.TrimSpace(strings.SplitN(part, ";", 2)[0])
		if tag == "" {
			continue
		}
		for l := range n.Texts {
			if strings.EqualFold(tag, l) {
				return l
			}
		}
		primary := strings.ToLower(strings.SplitN(tag, "-", 2)[0])
		for l := range n.Texts {
			if strings.ToLower(strings.SplitN(l, "-", 2)[0]) == primary {
				return l
			}
		}
	}
	return "en"
}
