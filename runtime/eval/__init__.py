"""What a precision costs on the user's own data: SQuAD-format QA and retrieval evaluation."""
