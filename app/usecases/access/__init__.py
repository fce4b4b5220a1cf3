"""Who may do what: API tokens and their grants, the dashboard's and the previews' sign-in with Gitea."""
