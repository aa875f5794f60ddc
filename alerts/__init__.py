"""Alerts: outbox rules over stories, Block Kit messages, delivery to Slack or the console."""
