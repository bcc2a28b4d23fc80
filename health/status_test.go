package health

import "testing"

func TestParseStatusRanges(t *testing.T) {
	tests := []struct {
		in   string
		want string // canonical form; "" means an error
		in1  []int  // accepted codes
		out  []int  // rejected codes
	}{
		{"", "200-399", []int{200, 301, 399}, []int{199, 400, 500}},
		{"200-399", "200-399", []int{200, 399}, []int{404}},
		{"200,204", "200,204", []int{200, 204}, []int{201, 302}},
		{" 200 - 299 , 301 ", "200-299,301", []int{250, 301}, []int{302}},
		{"2xx,3XX", "200-299,300-399", []int{200, 399}, []int{400}},
		{"399-200", "", nil, nil},
		{"abc", "", nil, nil},
		{"600", "", nil, nil},
		{"20", "", nil, nil},
		{"+200", "", nil, nil},
		{"200,", "", nil, nil},
		{"6xx", "", nil, nil},
	}
	for _, tt := range tests {
		rs, err := ParseStatusRanges(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseStatusRanges(%q) = %v, want an error", tt.in, rs)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseStatusRanges(%q): %v", tt.in, err)
			continue
		}
		if rs.String() != tt.want {
			t.Errorf("ParseStatusRanges(%q) = %v, want %v", tt.in, rs, tt.want)
		}
		for _, c := range tt.in1 {
			if !rs.Contains(c) {
				t.Errorf("%q rejects %d", tt.in, c)
			}
		}
		for _, c := range tt.out {
			if rs.Contains(c) {
				t.Errorf("%q accepts %d", tt.in, c)
			}
		}
	}
}
