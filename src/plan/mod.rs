//! Model-memory arithmetic (placeholder until the planner lands).
