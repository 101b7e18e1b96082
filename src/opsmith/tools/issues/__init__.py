"""External issue trackers (the IssueTracker port): GitHub's REST API."""
