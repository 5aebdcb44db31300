// Implementation arrives with issue 3.
