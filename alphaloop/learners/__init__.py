"""Learners: the math that changes a policy from experience (imitation, advantages, policy gradient)."""
