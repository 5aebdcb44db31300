// Tests arrive with issue 3.
